/**
 * The regeneration policies: what each of "fresh", "disk", "base" and "nuke"
 * redraws and which VM state it resets. This table is the single source of
 * truth; the README quotes it and the manager executes it.
 */
import { IDENTIFIER_FIELDS, type IdentifierField } from "./model.js";

export type PolicyName = "fresh" | "disk" | "base" | "nuke";

/** VM state outside identifiers.json that a policy resets. */
export type ResetStep =
  /** Replace uefi-instance.fd with a fresh copy of uefi-seed.fd (incl. Secure Boot variables). */
  | "uefi"
  /** Wipe tpm/ and create a new TPM 2.0 state with a new EK. */
  | "tpm"
  /** Recreate overlay.qcow2 on top of base.qcow2 (old overlay kept in history/). */
  | "overlay"
  /** Apply the disk and OS identifiers offline to the VM's own disk (sysprep). */
  | "disk-identity"
  /** Rewrite shared/set_identifiers.sh, shared/identity.env and seed.iso. */
  | "guest-files";

export interface Policy {
  readonly name: PolicyName;
  /** What the seed calls it. */
  readonly title: string;
  /** The CLI command that runs it (also the VM lock's purpose). */
  readonly command: string;
  /** Identifier fields drawn anew; every other field is kept. */
  readonly regenerate: readonly IdentifierField[];
  /** State reset after the identifiers are written. */
  readonly reset: readonly ResetStep[];
  /** Whether the policy refuses to run when identifiers already exist (unless forced). */
  readonly refusesExisting: boolean;
  readonly description: string;
}

const DISK_FIELDS = [
  "disk_uuid",
  "partition_uuid",
  "filesystem_uuid",
  "boot_uuid",
  "swap_uuid",
  "vm_generation_id",
] as const satisfies readonly IdentifierField[];

export const POLICIES: Readonly<Record<PolicyName, Policy>> = {
  fresh: {
    name: "fresh",
    command: "glint create",
    title: "Fresh creation",
    regenerate: IDENTIFIER_FIELDS,
    reset: ["disk-identity", "guest-files"],
    refusesExisting: true,
    description:
      "all new identifiers for a new VM; refuses if the VM already has some unless forced",
  },
  disk: {
    name: "disk",
    command: "glint regen disk",
    title: "Regenerate overlay with fresh identifiers",
    regenerate: DISK_FIELDS,
    reset: ["uefi", "overlay", "disk-identity", "guest-files"],
    refusesExisting: false,
    description:
      "new disk, partition, filesystem, boot and swap UUIDs and a new vm_generation_id; keeps vm_uuid, MAC and machine_id",
  },
  base: {
    name: "base",
    command: "glint regen base",
    title: "Regenerate base image identifiers",
    regenerate: IDENTIFIER_FIELDS,
    reset: ["uefi", "disk-identity", "guest-files"],
    refusesExisting: false,
    description: "every identifier anew, for a cloned or new base image",
  },
  nuke: {
    name: "nuke",
    command: "glint nuke",
    title: "NUKE VM session (complete reset)",
    regenerate: IDENTIFIER_FIELDS,
    reset: ["uefi", "tpm", "overlay", "disk-identity", "guest-files"],
    refusesExisting: false,
    description:
      "every identifier anew, and fresh UEFI NVRAM, Secure Boot variables, TPM and overlay",
  },
};

/** Fields a policy keeps (the complement of `regenerate`). */
export function keptFields(policy: Policy): IdentifierField[] {
  return IDENTIFIER_FIELDS.filter((f) => !policy.regenerate.includes(f));
}

const STEP_TEXT: Record<ResetStep, string> = {
  uefi: "fresh UEFI NVRAM (incl. Secure Boot variables)",
  tpm: "new TPM state (new EK)",
  overlay: "fresh overlay (old one kept in history/)",
  "disk-identity":
    "disk and OS identifiers written into the VM's own disk offline (sysprep), unless created with `--no-sysprep`",
  "guest-files": "post-install script and seed.iso re-rendered",
};

/** The policies table as Markdown; the README quotes it verbatim (a test checks). */
export function policiesTableMarkdown(): string {
  const rows = Object.values(POLICIES).map((p) => {
    const kept = keptFields(p);
    const ids =
      kept.length === 0
        ? "all new"
        : `new ${p.regenerate.map((f) => `\`${f}\``).join(", ")}; keeps ${kept.map((f) => `\`${f}\``).join(", ")}`;
    const refuses = p.refusesExisting ? "; refuses if identifiers exist unless `--force`" : "";
    return `| \`${p.name}\` | ${p.title} | ${ids}${refuses} | ${p.reset.map((s) => STEP_TEXT[s]).join("; ")} |`;
  });
  return [
    "| policy | seed name | identifiers | firmware and files reset |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
