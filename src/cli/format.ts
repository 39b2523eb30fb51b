/** Human-readable renderings shared by the CLI commands and the menu. */
import { extraMacsOf, IDENTIFIER_FIELDS, type SystemIdentifiers } from "../identity/model.js";

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
  extra_macs: "Extra NIC MACs",
  generation: "Generation",
  created_at: "Created",
  updated_at: "Updated",
};

export function label(field: string): string {
  return LABELS[field] ?? field;
}

const BASE_ROWS = [...IDENTIFIER_FIELDS, "generation", "created_at", "updated_at"] as const;
type Row = (typeof BASE_ROWS)[number] | "extra_macs";

/** The rows shown: the extra NIC MACs after the MAC, when either identity has some. */
function rowsFor(...ids: (SystemIdentifiers | undefined)[]): Row[] {
  if (!ids.some((i) => i !== undefined && extraMacsOf(i).length > 0)) return [...BASE_ROWS];
  const at = BASE_ROWS.indexOf("mac_address") + 1;
  return [...BASE_ROWS.slice(0, at), "extra_macs", ...BASE_ROWS.slice(at)];
}

function cell(ids: SystemIdentifiers, r: Row): string {
  return r === "extra_macs" ? extraMacsOf(ids).join(" ") || "none" : String(ids[r]);
}

/** `Label  value` lines for one identity. */
export function formatIdentity(ids: SystemIdentifiers, indent = ""): string {
  const rows = rowsFor(ids);
  const width = Math.max(...rows.map((r) => label(r).length));
  return rows.map((r) => `${indent}${label(r).padEnd(width)}  ${cell(ids, r)}`).join("\n");
}

/** Old and new side by side, marking what changed. */
export function formatComparison(
  before: SystemIdentifiers | undefined,
  after: SystemIdentifiers,
): string {
  const rows = rowsFor(before, after);
  const width = Math.max(...rows.map((r) => label(r).length));
  const w2 = 36;
  const lines = [`${"".padEnd(width)}  ${"before".padEnd(w2)}  after`];
  for (const r of rows) {
    const a = before ? cell(before, r) : "-";
    const b = cell(after, r);
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
