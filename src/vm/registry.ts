import path from "node:path";
import { canonicalHex } from "../identity/formats.js";
import { type SystemIdentifiers, type ValueField, valueEntries } from "../identity/model.js";
import { readFileIfExists, stripBom } from "./fsutil.js";
import { VM_FILES } from "./layout.js";
import { listVmNames } from "./store.js";

/** Values compare without dashes or case, so a machine-id equal to a UUID's bits counts as taken. */
export function valueKey(value: string): string {
  return /^[0-9a-fA-F-]{32,36}$/.test(value) ? canonicalHex(value) : value.toLowerCase();
}

/** Every (field, string value) pair in a (possibly invalid) identifiers object, extra MACs included. */
const entriesOf = valueEntries;

/** A value that two VMs hold. */
export interface Duplicate {
  readonly field: ValueField;
  readonly value: string;
  /** Every VM holding it, sorted. */
  readonly vms: readonly string[];
}

/** VM directories read at once during a scan. */
const SCAN_BATCH = 64;

async function readJson(file: string): Promise<unknown> {
  try {
    // Never through a symlink, never blocking on a FIFO; a BOM is allowed.
    return JSON.parse(stripBom((await readFileIfExists(file)) ?? "null"));
  } catch {
    return undefined; // no or unreadable file: nothing to reserve
  }
}

export class UsedValues {
  /** value key → names of the VMs holding it */
  private readonly owners = new Map<string, Set<string>>();
  /** value key → the field and value it was first seen as */
  private readonly seen = new Map<string, { field: ValueField; value: string }>();
  constructor(readonly home: string) {}

  /** Scan the home (`force` is accepted for callers of the cached version: every refresh scans). */
  async refresh(_options: { force?: boolean } = {}): Promise<void> {
    this.owners.clear();
    this.seen.clear();
    const vms = await listVmNames(this.home);
    // Read in parallel batches: a home with 10,000 VMs is scanned by every new process.
    for (let i = 0; i < vms.length; i += SCAN_BATCH) {
      const batch = vms.slice(i, i + SCAN_BATCH);
      const found = await Promise.all(
        batch.map(async (vm) => {
          const dir = path.join(this.home, vm);
          // The journal first (see the module comment): values of an
          // operation in progress are reserved too.
          const pending = await readJson(path.join(dir, VM_FILES.journal));
          const ids = await readJson(path.join(dir, VM_FILES.identifiers));
          return [
            vm,
            ids,
            (pending as { identifiers?: unknown } | undefined)?.identifiers,
          ] as const;
        }),
      );
      for (const [vm, ids, pending] of found) {
        for (const [f, v] of entriesOf(ids)) this.add(f, v, vm);
        for (const [f, v] of entriesOf(pending)) this.add(f, v, vm);
      }
    }
  }

  private add(field: ValueField, value: string, vm: string): void {
    const k = valueKey(value);
    let set = this.owners.get(k);
    if (!set) {
      set = new Set();
      this.owners.set(k, set);
      this.seen.set(k, { field, value });
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

  /** Values of `ids` that a VM other than `vm` holds, with those VMs. */
  conflictsOf(
    vm: string,
    ids: SystemIdentifiers,
  ): { field: ValueField; value: string; vm: string }[] {
    const out: { field: ValueField; value: string; vm: string }[] = [];
    for (const [field, value] of entriesOf(ids)) {
      const other = [...(this.owners.get(valueKey(value)) ?? [])].filter((o) => o !== vm).sort();
      if (other[0] !== undefined) out.push({ field, value, vm: other[0] });
    }
    return out;
  }

  /** Every value held by more than one VM. */
  duplicates(): Duplicate[] {
    const out: Duplicate[] = [];
    for (const [k, set] of this.owners) {
      if (set.size < 2) continue;
      const first = this.seen.get(k);
      out.push({
        field: first?.field ?? "vm_uuid",
        value: first?.value ?? k,
        vms: [...set].sort(),
      });
    }
    return out.sort(
      (a, b) => a.vms.join().localeCompare(b.vms.join()) || a.field.localeCompare(b.field),
    );
  }

  /** Record that `vm` now holds `ids` (and no longer its `previous` values), in memory. */
  async commit(
    vm: string,
    ids: SystemIdentifiers | undefined,
    previous?: SystemIdentifiers,
  ): Promise<void> {
    if (previous) {
      for (const [, v] of entriesOf(previous)) {
        const set = this.owners.get(valueKey(v));
        set?.delete(vm);
        if (set?.size === 0) {
          this.owners.delete(valueKey(v));
          this.seen.delete(valueKey(v));
        }
      }
    }
    for (const [f, v] of entriesOf(ids)) this.add(f, v, vm);
  }
}
