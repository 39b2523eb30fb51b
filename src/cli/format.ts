/** Human-readable renderings shared by the CLI commands and the menu. */
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../identity/model.js";

const LABELS: Record<string, string> = {
  vm_uuid: "VM UUID",
  machine_id: "Machine ID",
  mac_address: "MAC address",
  disk_uuid: "Disk UUID",
  partition_uuid: "Partition UUID",
  filesystem_uuid: "Filesystem UUID",
  boot_uuid: "Boot UUID",
  swap_uuid: "Swap UUID",
  dmi_uuid: "DMI UUID",
  smbios_uuid: "SMBIOS UUID",
  cpu_serial: "CPU serial",
  motherboard_serial: "Motherboard serial",
  bios_uuid: "BIOS UUID",
  vm_generation_id: "VM generation ID",
  generation: "Generation",
  created_at: "Created",
  updated_at: "Updated",
};

export function label(field: string): string {
  return LABELS[field] ?? field;
}

const ROWS = [...IDENTIFIER_FIELDS, "generation", "created_at", "updated_at"] as const;

/** `Label  value` lines for one identity. */
export function formatIdentity(ids: SystemIdentifiers, indent = ""): string {
  const width = Math.max(...ROWS.map((r) => label(r).length));
  return ROWS.map((r) => `${indent}${label(r).padEnd(width)}  ${String(ids[r])}`).join("\n");
}

/** Old and new side by side, marking what changed. */
export function formatComparison(
  before: SystemIdentifiers | undefined,
  after: SystemIdentifiers,
): string {
  const width = Math.max(...ROWS.map((r) => label(r).length));
  const w2 = 36;
  const lines = [`${"".padEnd(width)}  ${"before".padEnd(w2)}  after`];
  for (const r of ROWS) {
    const a = before ? String(before[r]) : "-";
    const b = String(after[r]);
    lines.push(`${label(r).padEnd(width)}  ${a.padEnd(w2)}  ${b}${a === b ? "  (kept)" : ""}`);
  }
  return lines.join("\n");
}

/** Align columns of a table of strings. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
