/**
 * What sysprep did (or, with dryRun, would do): every object changed with its
 * old and new value, every file rewritten or removed, every thing skipped and
 * why, and the fresh random values drawn for partitions the identity does not
 * name (the caller keeps them in the VM's config and passes them back as
 * `previousMap`, so that a later run finds the same values again).
 */

/** The identity fields sysprep applies (a subset of identifiers.json). */
export interface SysprepIdentity {
  readonly disk_uuid: string;
  readonly partition_uuid: string;
  readonly filesystem_uuid: string;
  readonly boot_uuid: string;
  readonly swap_uuid: string;
  readonly machine_id: string;
}

export interface SysprepInput {
  /** The VM's name; the hostname unless `hostname` is given. */
  readonly vmName: string;
  readonly identifiers: SysprepIdentity;
  readonly hostname?: string;
  /** Fresh values of an earlier run (report.freshValues), reused when the same object is found. */
  readonly previousMap?: Readonly<Record<string, string>>;
  /**
   * The guest's `/etc/glint/applied` record (formatAppliedRecord), written
   * into the root filesystem so the first-boot script knows this identity is
   * already applied.
   */
  readonly appliedRecord?: string;
}

export interface SysprepOptions {
  /** Read the image and report the plan; write nothing. */
  readonly dryRun?: boolean;
  /** Environment for the host tools (PATH, GLINT_* overrides). */
  readonly env?: NodeJS.ProcessEnv;
  readonly onProgress?: (message: string) => void;
}

export type ObjectKind =
  | "gpt-disk-guid"
  | "mbr-disk-signature"
  | "partuuid"
  | "ext-uuid"
  | "vfat-id"
  | "swap-uuid"
  | "xfs-uuid"
  | "luks-uuid"
  | "machine-id"
  | "hostname"
  | "ssh-host-key";

export interface ObjectChange {
  /** Human-readable object, e.g. "partition 3 (ext4, /) filesystem UUID". */
  readonly object: string;
  readonly kind: ObjectKind;
  /** Identity field the new value comes from, or "fresh" (random, see freshValues), or "generated". */
  readonly source: string;
  readonly old: string | null;
  readonly new: string;
}

export interface FileChange {
  /** Where the file lives, e.g. "partition 3 (ext4, /)". */
  readonly filesystem: string;
  readonly path: string;
  readonly action: "rewritten" | "removed" | "created";
  readonly detail?: string;
}

export interface SkippedItem {
  readonly object: string;
  readonly reason: string;
}

export interface SysprepReport {
  readonly image: string;
  readonly format: "qcow2" | "raw";
  /** applied: changes written; planned: dry run; skipped: nothing Glint recognises. */
  readonly status: "applied" | "planned" | "skipped";
  readonly partitionTable: "gpt" | "mbr" | "none";
  readonly changes: readonly ObjectChange[];
  readonly files: readonly FileChange[];
  readonly skipped: readonly SkippedItem[];
  /** Things the caller should know (e.g. an initramfs that embeds an old UUID). */
  readonly notes: readonly string[];
  /** Random values drawn for objects the identity does not name; keep them in the VM's config. */
  readonly freshValues: Readonly<Record<string, string>>;
  readonly durationMs: number;
}

/** A short multi-line text rendering of a report (for the CLI). */
export function formatReport(r: SysprepReport): string {
  const lines: string[] = [];
  const verb = r.status === "planned" ? "would change" : r.status === "applied" ? "changed" : "";
  lines.push(`${r.image} (${r.format}, ${r.partitionTable}): ${r.status}`);
  for (const c of r.changes) {
    lines.push(`  ${verb} ${c.object}: ${c.old ?? "(none)"} -> ${c.new} [${c.source}]`);
  }
  for (const f of r.files) {
    lines.push(`  ${f.action} ${f.path} on ${f.filesystem}${f.detail ? ` (${f.detail})` : ""}`);
  }
  for (const s of r.skipped) lines.push(`  skipped ${s.object}: ${s.reason}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines.join("\n");
}
