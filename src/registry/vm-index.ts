/**
 * The index of a home's VMs that `glint list` reads instead of every VM's
 * files: one row per VM with what list shows (the identity, firmware, TPM,
 * overlay). It is written in the registry transaction that marks a VM's new
 * values issued (see Registry.issue and the batch path), built from the
 * files the first time a home is listed, and rebuilt by `registry rebuild`.
 * The directory listing stays the truth for which VMs exist: a VM the index
 * lacks is read from its files, an indexed VM whose directory is gone is
 * left out.
 */
import { promises as fs } from "node:fs";
import { identifiersToDict, type SystemIdentifiers } from "../identity/model.js";
import type { VmConfig } from "../vm/config.js";
import { vmPaths } from "../vm/layout.js";
import { listVmNames, readConfigOrDefault, readIdentifiers } from "../vm/store.js";
import type { IndexEntry } from "./model.js";

/** What list shows of one VM (list --json's element, without name, ok and state). */
export type VmSummary = Record<string, string | number | boolean | string[]>;

export function summaryOf(ids: SystemIdentifiers, config: VmConfig): VmSummary {
  return {
    ...identifiersToDict(ids),
    firmware: config.firmware,
    tpm: config.tpm,
    overlay: config.overlay,
  };
}

export function indexEntry(
  vm: string,
  ids: SystemIdentifiers,
  config: VmConfig,
  stamp: string,
): IndexEntry {
  return { vm, data: JSON.stringify(summaryOf(ids, config)), stamp };
}

/** A file's mtime and size ("" when it is missing): see IndexEntry.stamp. */
export function stampOf(st: { mtimeMs: number; size: number } | undefined): string {
  return st ? `${Math.round(st.mtimeMs)}:${st.size}` : "";
}

/** The stamp of `home/vm/identifiers.json` now. */
export async function fileStamp(home: string, vm: string): Promise<string> {
  return stampOf(await fs.stat(vmPaths(home, vm).identifiers).catch(() => undefined));
}

/** VMs read at once while building an index. */
const BATCH = 64;

/** Index entries for every VM of `home` whose files can be read. */
export async function entriesFromFiles(home: string): Promise<IndexEntry[]> {
  const vms = await listVmNames(home);
  const out: IndexEntry[] = [];
  for (let i = 0; i < vms.length; i += BATCH) {
    const found = await Promise.all(
      vms.slice(i, i + BATCH).map(async (vm) => {
        try {
          const paths = vmPaths(home, vm);
          const stamp = await fileStamp(home, vm);
          const ids = await readIdentifiers(paths);
          return ids ? indexEntry(vm, ids, await readConfigOrDefault(paths), stamp) : undefined;
        } catch {
          return undefined; // unreadable: list reads its files and says why
        }
      }),
    );
    for (const e of found) if (e) out.push(e);
  }
  return out;
}
