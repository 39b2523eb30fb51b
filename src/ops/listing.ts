/**
 * `glint list`: every VM of a home with its state and what list shows. With a
 * registry, a VM comes from the registry's index (src/registry/vm-index.ts)
 * and its files are read only when the index lacks it or something may be
 * going on in it (its lock file is there: an operation runs or was cut
 * short, or QEMU runs); without one, every VM's files are read.
 */
import { existsSync, promises as fs, statSync } from "node:fs";
import path from "node:path";
import { messageOf } from "../errors.js";
import { EXTRA_MACS, IDENTIFIER_FIELDS, type ValueField } from "../identity/model.js";
import type { IndexEntry } from "../registry/model.js";
import type { Registry } from "../registry/registry.js";
import { stampOf, summaryOf, type VmSummary } from "../registry/vm-index.js";
import { storePaths, VM_FILES, type VmPaths, vmPaths } from "../vm/layout.js";
import { type Duplicate, valueKey } from "../vm/registry.js";
import { runningQemuPid } from "../vm/running.js";
import { listVmNames } from "../vm/store.js";
import { readIdentity, readVmConfig } from "./inspect.js";

export type VmState = "running" | "stopped" | "interrupted";

export interface VmListing {
  readonly vm: string;
  readonly state: VmState;
  /**
   * What list shows (a {@link VmSummary}) as JSON text, or undefined when
   * the VM cannot be read (`error` says why). Kept as text: a large home's
   * list is written out without parsing every VM's.
   */
  readonly json?: string;
  readonly error?: string;
}

/** The summary in a listing, parsed. */
export function summaryIn(listing: VmListing): VmSummary | undefined {
  return listing.json === undefined ? undefined : (JSON.parse(listing.json) as VmSummary);
}

/**
 * `running` while its QEMU runs, `interrupted` when an operation on it was
 * cut short (its journal is there), otherwise `stopped`.
 */
export async function stateOf(paths: VmPaths): Promise<{ state: VmState; pid?: number }> {
  const pid = await runningQemuPid(paths);
  if (pid !== undefined) return { state: "running", pid };
  return { state: existsSync(paths.journal) ? "interrupted" : "stopped" };
}

/** VMs that have a lock file (held, or left by a killed process). */
async function lockedVms(home: string): Promise<Set<string>> {
  const names = await fs.readdir(storePaths(home).vmLocks).catch(() => [] as string[]);
  return new Set(names.filter((n) => n.endsWith(".lock")).map((n) => n.slice(0, -5)));
}

async function fromFiles(paths: VmPaths): Promise<VmListing> {
  const { state } = await stateOf(paths).catch(() => ({ state: "stopped" as const }));
  try {
    const ids = await readIdentity(paths);
    const summary = summaryOf(ids, await readVmConfig(paths));
    return { vm: paths.name, state, json: JSON.stringify(summary) };
  } catch (error) {
    return { vm: paths.name, state, error: messageOf(error) };
  }
}

/** VMs read from their files at once. */
const BATCH = 64;

export async function listHome(home: string, registry: Registry | undefined): Promise<VmListing[]> {
  const [names, dirs, locked, index] = await Promise.all([
    listVmNames(home, { includeSymlinks: true }),
    listVmNames(home),
    lockedVms(home),
    registry ? registry.vmIndex() : new Map<string, IndexEntry>(),
  ]);
  const realDirs = new Set(dirs);
  const out: (VmListing | undefined)[] = new Array(names.length);
  const toRead: number[] = [];
  for (const [i, vm] of names.entries()) {
    const entry = index.get(vm);
    const dir = path.join(home, vm);
    if (
      entry === undefined ||
      locked.has(vm) ||
      !realDirs.has(vm) ||
      // identifiers.json changed since it was indexed (by hand, or by an older Glint)
      stampOf(statSync(path.join(dir, VM_FILES.identifiers), { throwIfNoEntry: false })) !==
        entry.stamp ||
      // a journal left without a lock file still says interrupted
      existsSync(path.join(dir, VM_FILES.journal))
    )
      toRead.push(i);
    else out[i] = { vm, state: "stopped", json: entry.data };
  }
  for (let i = 0; i < toRead.length; i += BATCH) {
    await Promise.all(
      toRead.slice(i, i + BATCH).map(async (n) => {
        out[n] = await fromFiles(vmPaths(home, names[n] ?? ""));
      }),
    );
  }
  return out.filter((l): l is VmListing => l !== undefined);
}

/** Every value that the current identities of two or more listed VMs hold. */
export function duplicatesOf(listings: readonly VmListing[]): Duplicate[] {
  const owners = new Map<string, { field: ValueField; value: string; vms: Set<string> }>();
  const own = (vm: string, field: ValueField, value: unknown) => {
    if (typeof value !== "string") return;
    const key = valueKey(value);
    const o = owners.get(key) ?? { field, value, vms: new Set<string>() };
    o.vms.add(vm);
    owners.set(key, o);
  };
  for (const listing of listings) {
    const summary = summaryIn(listing);
    if (!summary) continue;
    for (const field of IDENTIFIER_FIELDS) own(listing.vm, field, summary[field]);
    const extra = summary[EXTRA_MACS];
    if (Array.isArray(extra)) for (const mac of extra) own(listing.vm, EXTRA_MACS, mac);
  }
  return [...owners.values()]
    .filter((o) => o.vms.size > 1)
    .map((o) => ({ field: o.field, value: o.value, vms: [...o.vms].sort() }))
    .sort((a, b) => a.vms.join().localeCompare(b.vms.join()) || a.field.localeCompare(b.field));
}
