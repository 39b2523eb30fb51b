/**
 * Store-wide uniqueness: every identifier value Glint issues differs from
 * every value held by any VM in the same home. Callers hold the store lock
 * while they load, draw and commit, so concurrent processes cannot hand out
 * the same value.
 *
 * Loading scans every `<vm>/identifiers.json`. A process keeps the result and
 * rescans only when the store changed: every commit rewrites
 * `<home>/.glint/generation` with a new token, and a new VM directory changes
 * the home directory's mtime.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { canonicalHex } from "../identity/formats.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../identity/model.js";
import { writeFileAtomic } from "./atomic.js";
import { readFileIfExists, stripBom } from "./fsutil.js";
import { journalValues } from "./journal.js";
import { storePaths } from "./layout.js";
import { listVmNames } from "./store.js";

/** Values compare without dashes or case, so a machine-id equal to a UUID's bits counts as taken. */
export function valueKey(value: string): string {
  return /^[0-9a-fA-F-]{32,36}$/.test(value) ? canonicalHex(value) : value.toLowerCase();
}

/** Every string value in a (possibly invalid) identifiers object. */
function valuesOf(data: unknown): string[] {
  if (data === null || typeof data !== "object") return [];
  return IDENTIFIER_FIELDS.map((f) => (data as Record<string, unknown>)[f]).filter(
    (v): v is string => typeof v === "string",
  );
}

/** VM directories read at once during a scan. */
const SCAN_BATCH = 64;

export class UsedValues {
  /** value key → names of the VMs holding it */
  private readonly owners = new Map<string, Set<string>>();
  private cacheKey = "";

  constructor(readonly home: string) {}

  private async currentKey(): Promise<string> {
    const token = await fs.readFile(storePaths(this.home).generation, "utf8").catch(() => "none");
    const st = await fs.stat(this.home).catch(() => undefined);
    return `${token}|${st?.mtimeMs ?? 0}`;
  }

  /** Rescan the home if another process (or a person) changed it. */
  async refresh(): Promise<void> {
    const key = await this.currentKey();
    if (key === this.cacheKey) return;
    this.owners.clear();
    const readJson = async (file: string): Promise<unknown> => {
      try {
        // Never through a symlink, never blocking on a FIFO; a BOM is allowed.
        return JSON.parse(stripBom((await readFileIfExists(file)) ?? "null"));
      } catch {
        return undefined; // no or unreadable file: nothing to reserve
      }
    };
    const vms = await listVmNames(this.home);
    // Read in parallel batches: a home with 10,000 VMs is scanned by every new process.
    for (let i = 0; i < vms.length; i += SCAN_BATCH) {
      const batch = vms.slice(i, i + SCAN_BATCH);
      const found = await Promise.all(
        batch.map(async (vm) => {
          const dir = path.join(this.home, vm);
          // Values of an interrupted operation (the journal) are reserved too.
          return [
            vm,
            await readJson(path.join(dir, "identifiers.json")),
            await journalValues(dir),
          ] as const;
        }),
      );
      for (const [vm, ids, pending] of found) {
        for (const v of valuesOf(ids)) this.add(v, vm);
        for (const v of valuesOf(pending)) this.add(v, vm);
      }
    }
    this.cacheKey = key;
  }

  private add(value: string, vm: string): void {
    const k = valueKey(value);
    let set = this.owners.get(k);
    if (!set) {
      set = new Set();
      this.owners.set(k, set);
    }
    set.add(vm);
  }

  /** Whether any VM (including `vm` itself, for values it is giving up) holds `value`. */
  has(value: string): boolean {
    return this.owners.has(valueKey(value));
  }

  /** Number of distinct values held. */
  get size(): number {
    return this.owners.size;
  }

  /** Record that `vm` now holds `ids` (and no longer its `previous` values); bump the generation. */
  async commit(
    vm: string,
    ids: SystemIdentifiers | undefined,
    previous?: SystemIdentifiers,
  ): Promise<void> {
    if (previous) {
      for (const v of valuesOf(previous)) {
        const set = this.owners.get(valueKey(v));
        set?.delete(vm);
        if (set?.size === 0) this.owners.delete(valueKey(v));
      }
    }
    for (const v of valuesOf(ids)) this.add(v, vm);
    const { dir, generation } = storePaths(this.home);
    await fs.mkdir(dir, { recursive: true });
    const token = randomBytes(8).toString("hex");
    await writeFileAtomic(generation, token);
    const st = await fs.stat(this.home);
    this.cacheKey = `${token}|${st.mtimeMs}`;
  }
}
