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
import { SharedValues } from "../vm/shared-values.js";
import { listVmNames } from "../vm/store.js";
import { type RegistryRow, registryValue, slotOf } from "./model.js";
import { type Registry, rowsFromFiles } from "./registry.js";
import { type FileValue, SCAN_BATCH, scanHome, scanVm } from "./scan.js";

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
  const shared = new SharedValues();
  for (const f of found) shared.add(f.vm, f.field, f.value, slotOf(f));
  return sharedDrift(shared, slots);
}

function sharedDrift(shared: SharedValues, slots: Set<string>): Drift[] {
  return shared.result().map((d) => {
    slots.add(slotOf(registryValue(d.field, d.value)));
    return { kind: "duplicate" as const, field: d.field, value: d.value, vms: d.vms };
  });
}

function sortDrift(drift: Drift[]): Drift[] {
  return drift.sort(
    (a, b) =>
      a.vms.join().localeCompare(b.vms.join()) ||
      a.kind.localeCompare(b.kind) ||
      a.field.localeCompare(b.field),
  );
}

/** A row that none of its VM's files hold: a reservation left behind, or a value no file has. */
function strayRow(r: RegistryRow): Drift {
  return {
    kind: r.state === "reserved" ? "orphan" : "unknown",
    field: r.field,
    value: r.value,
    vms: [r.vm],
  };
}

/**
 * Check the home's files against its rows, VM by VM: what is kept for the
 * whole home is one small entry per value (for the duplicates between
 * VMs), the drift found, and the VM names.
 */
export async function checkRegistry(registry: Registry): Promise<CheckReport> {
  const home = registry.home;
  const vms = await listVmNames(home);
  const shared = new SharedValues();
  const drift: Drift[] = [];
  // Values in files that the registry does not give to their VM (few).
  const notMine: FileValue[] = [];
  let withValues = 0;
  for (let i = 0; i < vms.length; i += SCAN_BATCH) {
    const batch = vms.slice(i, i + SCAN_BATCH);
    const [found, rows] = await Promise.all([
      Promise.all(batch.map((vm) => scanVm(home, vm))),
      registry.rowsOfVms(batch[0] ?? "", batch.at(-1) ?? ""),
    ]);
    for (const [j, vm] of batch.entries()) {
      const files = found[j] ?? [];
      const vmRows = rows.get(vm) ?? [];
      const mine = new Set(vmRows.map(slotOf));
      const inFiles = new Set<string>();
      if (files.length > 0) withValues++;
      for (const f of files) {
        const slot = slotOf(f);
        shared.add(vm, f.field, f.value, slot);
        inFiles.add(slot);
        if (f.source !== "journal" && !mine.has(slot)) notMine.push(f);
      }
      for (const r of vmRows) if (!inFiles.has(slotOf(r))) drift.push(strayRow(r));
    }
  }
  const dupSlots = new Set<string>();
  drift.push(...sharedDrift(shared, dupSlots));
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
  // Rows of VMs that were not scanned: retired if the directory is gone.
  const scanned = new Set(vms);
  let rows = 0;
  let retired = 0;
  for (const { vm, n } of await registry.rowCounts()) {
    rows += n;
    if (scanned.has(vm)) continue;
    if (!existsSync(path.join(home, vm))) retired += n;
    else for (const r of (await registry.rowsOfVms(vm, vm)).get(vm) ?? []) drift.push(strayRow(r));
  }
  return {
    registry: registry.description,
    vms: withValues,
    values: shared.size,
    rows,
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
