/**
 * `glint registry check` and `glint registry rebuild`: the files of a home
 * against its rows in the registry.
 *
 * Drift is any of:
 * - `missing`: a value in a VM's identifiers.json or history/ that the
 *   registry does not hold;
 * - `duplicate`: a value that two VMs' files hold, or that the registry
 *   gives to another VM (of this home or another);
 * - `orphan`: a reserved row with no journal or file holding it (a
 *   reservation whose operation is gone; the next command on the VM gives
 *   it back, see Registry.reconcile);
 * - `unknown`: an issued row of an existing VM that none of its files hold.
 * Rows of VMs whose directory is gone are kept (their values stay issued)
 * and counted as `retired`. A journal's values are an operation in progress:
 * the next command on the VM finishes or rolls it back.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import type { ValueField } from "../identity/model.js";
import type { RegistryRow } from "./model.js";
import { slotOf } from "./model.js";
import { type Registry, rowsFromFiles } from "./registry.js";
import { type FileValue, scanHome } from "./scan.js";

export type DriftKind = "missing" | "duplicate" | "orphan" | "unknown";

export interface Drift {
  readonly kind: DriftKind;
  readonly field: ValueField;
  readonly value: string;
  /** The VMs involved, sorted (`<home id>/<vm>` for another home's). */
  readonly vms: readonly string[];
}

export interface CheckReport {
  readonly registry: string;
  readonly vms: number;
  readonly values: number;
  readonly rows: number;
  readonly retired: number;
  readonly drift: readonly Drift[];
}

/** Values that the files of two or more VMs hold. */
function fileDuplicates(found: readonly FileValue[], slots = new Set<string>()): Drift[] {
  const holders = new Map<string, { f: FileValue; vms: Set<string> }>();
  for (const f of found) {
    const slot = slotOf(f);
    const h = holders.get(slot) ?? { f, vms: new Set<string>() };
    h.vms.add(f.vm);
    holders.set(slot, h);
  }
  for (const [slot, h] of holders) if (h.vms.size > 1) slots.add(slot);
  return [...holders.values()]
    .filter((h) => h.vms.size > 1)
    .map((h) => ({
      kind: "duplicate" as const,
      field: h.f.field,
      value: h.f.value,
      vms: [...h.vms].sort(),
    }));
}

function sortDrift(drift: Drift[]): Drift[] {
  return drift.sort(
    (a, b) =>
      a.vms.join().localeCompare(b.vms.join()) ||
      a.kind.localeCompare(b.kind) ||
      a.field.localeCompare(b.field),
  );
}

export async function checkRegistry(registry: Registry): Promise<CheckReport> {
  const found = await scanHome(registry.home);
  const rows = await registry.rows();
  const dupSlots = new Set<string>();
  const drift: Drift[] = fileDuplicates(found, dupSlots);
  const mine = new Map(rows.map((r) => [slotOf(r), r]));
  const inFiles = new Map<string, Set<string>>();
  for (const f of found) {
    const slot = slotOf(f);
    const vms = inFiles.get(slot) ?? new Set<string>();
    vms.add(f.vm);
    inFiles.set(slot, vms);
  }
  // Values in files the registry does not give to their VM.
  const notMine = found.filter((f) => f.source !== "journal" && mine.get(slotOf(f))?.vm !== f.vm);
  const elsewhere = new Map((await registry.ownersOf(notMine)).map((r) => [slotOf(r), r] as const));
  const reported = new Set<string>();
  for (const f of notMine) {
    const slot = slotOf(f);
    if (reported.has(`${slot}|${f.vm}`) || dupSlots.has(slot)) continue;
    reported.add(`${slot}|${f.vm}`);
    const owner = elsewhere.get(slot);
    if (!owner) {
      drift.push({ kind: "missing", field: f.field, value: f.value, vms: [f.vm] });
    } else {
      const other = owner.home === registry.homeId ? owner.vm : `${owner.home}/${owner.vm}`;
      drift.push({
        kind: "duplicate",
        field: f.field,
        value: f.value,
        vms: [f.vm, other].sort(),
      });
    }
  }
  let retired = 0;
  for (const r of rows) {
    if (inFiles.get(slotOf(r))?.has(r.vm)) continue;
    if (!existsSync(path.join(registry.home, r.vm))) {
      retired++;
    } else if (r.state === "reserved") {
      drift.push({ kind: "orphan", field: r.field, value: r.value, vms: [r.vm] });
    } else {
      drift.push({ kind: "unknown", field: r.field, value: r.value, vms: [r.vm] });
    }
  }
  return {
    registry: registry.description,
    vms: new Set(found.map((f) => f.vm)).size,
    values: inFiles.size,
    rows: rows.length,
    retired,
    drift: sortDrift(drift),
  };
}

/**
 * Replace the home's rows with what its files say (keeping the rows of
 * retired VMs). Refuses, listing each, when a value is held twice: by two
 * VMs' files, or by a VM here and one of another home.
 */
export async function rebuildRegistry(
  registry: Registry,
): Promise<{ rows: number; duplicates: Drift[] }> {
  const found = await scanHome(registry.home);
  const fresh = rowsFromFiles(registry.homeId, found);
  const duplicates = fileDuplicates(found);
  const slots = new Set(fresh.map(slotOf));
  for (const r of await registry.ownersOf(fresh)) {
    if (r.home === registry.homeId) continue;
    const mineRow = fresh.find((f) => slotOf(f) === slotOf(r));
    duplicates.push({
      kind: "duplicate",
      field: r.field,
      value: r.value,
      vms: [mineRow?.vm ?? "?", `${r.home}/${r.vm}`].sort(),
    });
  }
  if (duplicates.length > 0) return { rows: 0, duplicates: sortDrift(duplicates) };
  const retired: RegistryRow[] = (await registry.rows()).filter(
    (r) => !slots.has(slotOf(r)) && !existsSync(path.join(registry.home, r.vm)),
  );
  const rows = [...fresh, ...retired];
  await registry.replaceRows(rows);
  await registry.rebuildIndex();
  return { rows: rows.length, duplicates: [] };
}

/** The error for drift or duplicates found (exit code 1). */
export function driftError(
  count: number,
  what: string,
  reason: "drift" | "duplicates-found" = "drift",
): GlintError {
  return new GlintError(`${count} ${what}`, { code: "registry", details: { reason } });
}
