/** What the menu shows about a VM, a policy or a finished operation. */
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../identity/model.js";
import { keptFields, POLICIES, type Policy, type ResetStep } from "../../identity/policies.js";
import type { OperationResult } from "../../manager.js";
import type { VmConfig } from "../../vm/config.js";
import { formatComparison, formatIdentity, label } from "../format.js";
import { shellQuote } from "../shell.js";
import { STEP_LABELS } from "./context.js";
import { type Paint, paint } from "./style.js";

export function describeConfig(config: VmConfig): string {
  const firmware =
    config.firmware === "uefi-secure"
      ? "UEFI + Secure Boot"
      : config.firmware === "uefi"
        ? "UEFI"
        : "BIOS";
  return `firmware: ${firmware} · TPM: ${config.tpm ? "yes" : "no"} · overlay: ${config.overlay ? "yes" : "no"}`;
}

export function labels(fields: readonly string[]): string {
  return fields.length ? fields.map(label).join(", ") : "nothing";
}

/** What an operation did: kept and changed fields, old beside new, reset steps. */
export function describeResult(result: OperationResult, c: Paint = paint(false)): string {
  const policy = POLICIES[result.policy];
  const lines = [c.green(`✔ ${policy.title}: ${result.vm}`)];
  const { previous, identifiers } = result;
  if (previous) {
    const changed = IDENTIFIER_FIELDS.filter((f) => previous[f] !== identifiers[f]);
    lines.push(`Kept:    ${labels(keptFields(policy))}`);
    lines.push(`Changed: ${labels(changed)}`);
    lines.push("", formatComparison(previous, identifiers));
  } else {
    lines.push(formatIdentity(identifiers, "  "));
  }
  const steps = Object.entries(result.steps) as [ResetStep, string][];
  if (steps.length) {
    lines.push("", `Reset: ${steps.map(([s, o]) => `${STEP_LABELS[s] ?? s} ${o}`).join(", ")}`);
  }
  if (result.archived) lines.push(`The previous identity is kept in ${result.archived}`);
  return lines.join("\n");
}

export function policyPreview(policy: Policy, c: Paint): string {
  return [
    `  Draws anew: ${labels(policy.regenerate)}`,
    `  Keeps:      ${labels(keptFields(policy))}`,
    `  Resets:     ${policy.reset.map((s) => STEP_LABELS[s]).join(", ")}`,
  ]
    .map((l) => c.dim(l))
    .join("\n");
}

/** What NUKE destroys on this VM, item by item. */
export function nukePreview(
  vm: string,
  ids: SystemIdentifiers,
  config: VmConfig,
  c: Paint = paint(false),
): string {
  const width = Math.max(...IDENTIFIER_FIELDS.map((f) => label(f).length));
  const uefi = config.firmware !== "bios";
  return [
    c.red(c.bold(`NUKE "${vm}": this destroys`)),
    "  • every identifier (all are drawn anew):",
    ...IDENTIFIER_FIELDS.map((f) => `      ${label(f).padEnd(width)}  ${ids[f]}`),
    uefi
      ? "  • the UEFI variables: boot entries and firmware settings go back to the defaults"
      : "  • UEFI variables: none (BIOS firmware)",
    config.firmware === "uefi-secure"
      ? "  • the Secure Boot state: enrolled keys and variables are reset"
      : "  • Secure Boot: not enabled",
    config.tpm
      ? "  • the TPM: its state is wiped and a new TPM gets a new endorsement key; secrets sealed to it are lost"
      : "  • TPM: none",
    config.overlay
      ? "  • the overlay: the VM restarts from its base image; everything written since is gone (the old overlay is kept in history/)"
      : "  • overlay: none (the disk itself is not touched)",
    c.dim("  The old identifiers are kept in history/."),
  ].join("\n");
}

/**
 * A shell-quoted command, one option (with its value) per line, joined with
 * backslash-newlines so that it can be pasted into a shell as it is.
 */
export function formatCommand(argv: readonly string[]): string {
  const groups: string[][] = [];
  for (const arg of argv) {
    const last = groups.at(-1);
    if (!last || arg.startsWith("-")) groups.push([arg]);
    else last.push(arg);
  }
  return groups.map((g) => shellQuote(g)).join(" \\\n  ");
}
