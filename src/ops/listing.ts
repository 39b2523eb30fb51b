/**
 * `glint list`: every VM of a home with its state and what list shows. With a
 * registry, a VM comes from the registry's index (src/registry/vm-index.ts)
 * and its files are read only when the index lacks it or something may be
 * going on in it (its lock file is there: an operation runs or was cut
 * short, or QEMU runs); without one, every VM's files are read.
 */
import { existsSync, promises as fs } from "node:fs";
import { messageOf } from "../errors.js";
import { VM_NAME_RE } from "../identity/formats.js";
import { EXTRA_MACS, IDENTIFIER_FIELDS, type ValueField } from "../identity/model.js";
import type { IndexEntry } from "../registry/model.js";
import type { Registry } from "../registry/registry.js";
import { summaryOf, type VmSummary } from "../registry/vm-index.js";
import { storePaths, type VmPaths, vmPaths } from "../vm/layout.js";
import { type Duplicate, valueKey } from "../vm/registry.js";
import { runningQemuPid } from "../vm/running.js";
import { SharedValues } from "../vm/shared-values.js";
import { readIdentity, readVmConfig } from "./inspect.js";
import { stampAt, vmChecks } from "./vm-checks.js";

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
/** VMs decided at once: those read from their files in between are read in parallel. */
const WINDOW = 2048;

/**
 * Every VM of `home`, in name order, given to `visit` one at a time (nothing
 * is held for the whole home): from the registry's index, a page at a time,
 * when there is one; from its files when the index lacks the VM, something
 * may be going on in it, or its identifiers.json changed since it was indexed.
 */
export async function eachListing(
  home: string,
  registry: Registry | undefined,
  visit: (listing: VmListing) => void,
): Promise<void> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await fs.readdir(home, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  // What listVmNames gives, with and without symlinks, from one readdir.
  const names: string[] = [];
  const realDirs = new Set<string>();
  for (const e of entries) {
    if (!VM_NAME_RE.test(e.name)) continue;
    if (e.isDirectory()) {
      names.push(e.name);
      realDirs.add(e.name);
    } else if (e.isSymbolicLink()) names.push(e.name);
  }
  entries = [];
  names.sort();
  // The checks start now, in a worker for a large home, while the rest is read.
  const checks = vmChecks(home, names, WINDOW);
  let nextChecks = checks.next();
  try {
    const locked = await lockedVms(home);
    const pages = registry?.vmIndexPages()[Symbol.asyncIterator]();
    let page: readonly IndexEntry[] = [];
    let pos = 0;
    let done = pages === undefined;
    /** Whether the index entries up to `vm` are past the page in hand (names come in order). */
    const pastPage = (vm: string): boolean => {
      while (pos < page.length && (page[pos]?.vm ?? "") < vm) pos++;
      return pos >= page.length && !done;
    };
    /** The index entry of `vm` in the page in hand, if it has one. */
    const inPage = (vm: string) => (page[pos]?.vm === vm ? page[pos] : undefined);
    /** The index entry of `vm`, if it has one, reading pages as needed. */
    const entryOf = async (vm: string): Promise<IndexEntry | undefined> => {
      while (pastPage(vm)) {
        const r = await pages?.next();
        if (!r || r.done) done = true;
        else {
          page = r.value;
          pos = 0;
        }
      }
      return inPage(vm);
    };
    for (let w = 0; w < names.length; w += WINDOW) {
      const out: (VmListing | undefined)[] = [];
      const toRead: number[] = [];
      const c = (await nextChecks).value;
      nextChecks = checks.next();
      const window = names.slice(w, w + WINDOW);
      for (let i = 0; i < window.length; i++) {
        const vm = window[i] ?? "";
        const entry = pastPage(vm) ? await entryOf(vm) : inPage(vm);
        if (
          !c ||
          entry === undefined ||
          locked.has(vm) ||
          !realDirs.has(vm) ||
          // identifiers.json changed since it was indexed (by hand, or by an older Glint)
          stampAt(c, i) !== entry.stamp ||
          // a journal left without a lock file still says interrupted
          c.journals[i] === 1
        ) {
          toRead.push(out.length);
          out.push(undefined);
        } else out.push({ vm, state: "stopped", json: entry.data });
      }
      for (let i = 0; i < toRead.length; i += BATCH) {
        await Promise.all(
          toRead.slice(i, i + BATCH).map(async (n) => {
            out[n] = await fromFiles(vmPaths(home, names[w + n] ?? ""));
          }),
        );
      }
      for (const l of out) if (l) visit(l);
    }
  } finally {
    // A visit that throws: the worker stops too.
    await checks.return(undefined);
  }
}

/** Every VM of `home` (see {@link eachListing}). */
export async function listHome(home: string, registry: Registry | undefined): Promise<VmListing[]> {
  const out: VmListing[] = [];
  await eachListing(home, registry, (l) => out.push(l));
  return out;
}

/**
 * Finds the values that the current identities of two or more VMs hold, VM
 * by VM (see SharedValues: little is kept per value).
 */
export class DuplicateFinder {
  private readonly values = new SharedValues();

  add(listing: VmListing): void {
    const summary = summaryIn(listing);
    if (!summary) return;
    const own = (field: ValueField, value: unknown) => {
      if (typeof value === "string") this.values.add(listing.vm, field, value, valueKey(value));
    };
    for (const field of IDENTIFIER_FIELDS) own(field, summary[field]);
    const extra = summary[EXTRA_MACS];
    if (Array.isArray(extra)) for (const mac of extra) own(EXTRA_MACS, mac);
  }

  /** The values held twice or more, sorted by their VMs, then field. */
  result(): Duplicate[] {
    return this.values
      .result()
      .sort((a, b) => a.vms.join().localeCompare(b.vms.join()) || a.field.localeCompare(b.field));
  }
}

/** Every value that the current identities of two or more listed VMs hold. */
export function duplicatesOf(listings: readonly VmListing[]): Duplicate[] {
  const finder = new DuplicateFinder();
  for (const l of listings) finder.add(l);
  return finder.result();
}
