/**
 * The uniqueness authority of a home: a registry store (SQLite by default,
 * PostgreSQL when shared by several hosts), bound to this home's id. The
 * engine reserves every newly drawn value here in one transaction that also
 * checks it is unique, and gives reservations back when an operation rolls
 * back. A home is imported (its files and history) the first time a
 * registry sees it.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import type { AuditSink } from "../audit/log.js";
import { canonicalJson } from "../audit/record.js";
import { GlintError, messageOf } from "../errors.js";
import type { SystemIdentifiers, ValueField } from "../identity/model.js";
import { tempPathFor } from "../vm/atomic.js";
import { readFileIfExists } from "../vm/fsutil.js";
import { storePaths } from "../vm/layout.js";
import { withLock } from "../vm/lock.js";
import { readHomeConfig } from "./config.js";
import {
  type BatchItem,
  type IndexEntry,
  type Owner,
  type RegistryRow,
  type RegistryStore,
  type RegistryValue,
  slotOf,
  valuesOf,
} from "./model.js";
import { scanHome, scanVm } from "./scan.js";
import { entriesFromFiles } from "./vm-index.js";

export interface OpenOptions {
  /** `postgres://…`, `sqlite:FILE` or a file; else GLINT_REGISTRY, the home's config, `<home>/.glint/registry.db`. */
  readonly registry?: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly storeLockWaitMs: number;
  readonly notify: (message: string) => void;
}

/** A failure of the registry itself (unreachable, refused, corrupt): code `registry`. */
export function registryError(where: string, error: unknown): GlintError {
  if (error instanceof GlintError) return error;
  return new GlintError(`${where}: ${messageOf(error)}`, {
    code: "registry",
    details: { reason: "unavailable" },
    cause: error,
  });
}

/** This home's id, created once (atomically: the first of concurrent creators wins). */
export async function homeIdOf(home: string): Promise<string> {
  const file = storePaths(home).homeId;
  const existing = (await readFileIfExists(file))?.trim();
  if (existing && /^[0-9a-f]{32}$/.test(existing)) return existing;
  await fs.mkdir(storePaths(home).dir, { recursive: true });
  const tmp = tempPathFor(file);
  await fs.writeFile(tmp, `${randomBytes(16).toString("hex")}\n`, { flag: "wx", mode: 0o644 });
  try {
    await fs.link(tmp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    await fs.rm(tmp, { force: true });
  }
  const id = (await readFileIfExists(file))?.trim() ?? "";
  if (!/^[0-9a-f]{32}$/.test(id)) {
    throw new GlintError(`${file} is not a home id (32 hex digits)`, {
      code: "invalid-file",
      details: { file },
    });
  }
  return id;
}

/** A value another VM (of this home or another) holds. */
export interface Conflict {
  readonly field: ValueField;
  readonly value: string;
  /** The VM holding it; `<home id>/<vm>` when it is another home's. */
  readonly vm: string;
}

async function openStore(spec: string): Promise<RegistryStore> {
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const { openPostgres } = await import("./postgres.js");
    return openPostgres(spec);
  }
  const { openSqlite } = await import("./sqlite.js");
  return openSqlite(spec.replace(/^sqlite:/, ""));
}

export class Registry {
  private constructor(
    readonly home: string,
    readonly homeId: string,
    private readonly store: RegistryStore,
  ) {}

  get description(): string {
    return this.store.description;
  }

  /** Open the home's registry, importing the home on first use. */
  static async open(home: string, options: OpenOptions): Promise<Registry> {
    const config = await readHomeConfig(home);
    const spec =
      options.registry ??
      options.env.GLINT_REGISTRY ??
      config.registry ??
      storePaths(home).registryDb;
    const homeId = await homeIdOf(home);
    const where = /^postgres/.test(spec) ? "the PostgreSQL registry" : `the registry ${spec}`;
    let store: RegistryStore;
    try {
      store = await openStore(spec);
    } catch (error) {
      throw registryError(`cannot open ${where}`, error);
    }
    const registry = new Registry(home, homeId, store);
    try {
      if (!(await store.imported(homeId))) await registry.importHome(options);
    } catch (error) {
      await store.close().catch(() => {});
      throw registryError(`cannot import ${home} into ${where}`, error);
    }
    return registry;
  }

  private async importHome(options: OpenOptions): Promise<void> {
    await withLock(
      storePaths(this.home).lock,
      { purpose: "importing the home into the registry", waitMs: options.storeLockWaitMs },
      async () => {
        if (await this.store.imported(this.homeId)) return;
        const rows = rowsFromFiles(this.homeId, await scanHome(this.home));
        const refused = await this.store.claim(rows);
        if ((await this.store.index(this.homeId)) === undefined)
          await this.store.replaceIndex(this.homeId, await entriesFromFiles(this.home));
        await this.store.markImported(this.homeId, this.home);
        if (refused.length > 0) {
          options.notify(
            `${refused.length} value(s) of ${this.home} are also held elsewhere in the registry; \`glint registry check\` lists them`,
          );
        }
      },
    );
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw registryError(`${this.store.description}: ${what}`, error);
    }
  }

  private owner(vm: string): Owner {
    return { home: this.homeId, vm };
  }

  /** The slots (`slotOf`) of `values` that anyone holds. */
  async taken(values: readonly RegistryValue[]): Promise<Set<string>> {
    const rows = await this.call("looking up values", () => this.store.owners(values));
    return new Set(rows.map(slotOf));
  }

  /** Reserve `values` for `vm`, all or none; returns the values someone holds already. */
  reserve(vm: string, generation: number, values: readonly RegistryValue[]) {
    return this.call("reserving values", () =>
      this.store.reserve(this.owner(vm), generation, values),
    );
  }

  /** Give back the reserved values of `vm` among `ids` (an operation rolled back). */
  release(vm: string, ids: SystemIdentifiers, keep: SystemIdentifiers | undefined) {
    const kept = new Set(valuesOf(keep).map(slotOf));
    const values = valuesOf(ids).filter((v) => !kept.has(slotOf(v)));
    return this.call("releasing values", () => this.store.release(this.owner(vm), values));
  }

  /** Mark the values of `vm`'s new identity issued, and index the VM (`entry`) in the same transaction. */
  issue(vm: string, ids: SystemIdentifiers, entry?: IndexEntry) {
    return this.call("issuing values", () =>
      this.store.issue(this.owner(vm), valuesOf(ids), entry),
    );
  }

  /** Reserve a batch of new VMs' values, each VM all or none; returns the VMs refused. */
  reserveMany(items: readonly BatchItem[]): Promise<string[]> {
    return this.call("reserving values", () => this.store.reserveMany(this.homeId, items));
  }

  /** Settle a batch: issue (and index) the VMs made, release the others. */
  settleMany(
    issued: readonly (BatchItem & { readonly entry: IndexEntry })[],
    released: readonly BatchItem[],
  ): Promise<void> {
    return this.call("settling a batch", () =>
      this.store.settleMany(this.homeId, issued, released),
    );
  }

  /**
   * The index `glint list` reads (VM name → what list shows, as JSON text),
   * built from the files on first use.
   */
  async vmIndex(storeLockWaitMs = 30_000): Promise<Map<string, IndexEntry>> {
    let entries = await this.call("reading the VM index", () => this.store.index(this.homeId));
    if (entries === undefined) {
      entries = await withLock(
        storePaths(this.home).lock,
        { purpose: "indexing the home", waitMs: storeLockWaitMs },
        async () => {
          const again = await this.call("reading the VM index", () =>
            this.store.index(this.homeId),
          );
          if (again !== undefined) return again;
          const built = await entriesFromFiles(this.home);
          await this.rebuildIndex(built);
          return built;
        },
      );
    }
    return new Map(entries.map((e) => [e.vm, e]));
  }

  /**
   * The index `glint list` reads, in VM name order (byte order), a page at a
   * time, built from the files on first use.
   */
  async *vmIndexPages(
    storeLockWaitMs = 30_000,
    pageSize = 4096,
  ): AsyncGenerator<readonly IndexEntry[]> {
    const page = (after: string) =>
      this.call("reading the VM index", () => this.store.indexPage(this.homeId, after, pageSize));
    let rows = await page("");
    if (rows === undefined) {
      await this.vmIndex(storeLockWaitMs);
      rows = (await page("")) ?? [];
    }
    for (;;) {
      if (rows.length > 0) yield rows;
      const last = rows.at(-1);
      if (rows.length < pageSize || last === undefined) return;
      rows = (await page(last.vm)) ?? [];
    }
  }

  /** Replace the index with `entries` (default: read from the files). */
  async rebuildIndex(entries?: readonly IndexEntry[]): Promise<void> {
    const all = entries ?? (await entriesFromFiles(this.home));
    await this.call("indexing", () => this.store.replaceIndex(this.homeId, all));
  }

  /**
   * Values of `ids` that a VM other than `vm` holds. A value no one holds
   * (files the registry never saw) is claimed for `vm` first.
   */
  async conflictsOf(vm: string, ids: SystemIdentifiers): Promise<Conflict[]> {
    const values = valuesOf(ids);
    let rows = await this.call("looking up values", () => this.store.owners(values));
    if (rows.length < values.length) {
      const held = new Set(rows.map(slotOf));
      const missing = values
        .filter((v) => !held.has(slotOf(v)))
        .map((v) => ({
          ...v,
          ...this.owner(vm),
          generation: ids.generation,
          state: "issued" as const,
        }));
      await this.call("claiming values", () => this.store.claim(missing));
      rows = await this.call("looking up values", () => this.store.owners(values));
    }
    return rows
      .filter((r) => r.home !== this.homeId || r.vm !== vm)
      .map((r) => ({
        field: r.field,
        value: r.value,
        vm: r.home === this.homeId ? r.vm : `${r.home}/${r.vm}`,
      }));
  }

  /**
   * Settle the reservations of `vm`, which has no operation in progress (the
   * caller holds its lock and found no journal): a reserved value its files
   * hold was issued (a commit whose registry update failed); any other was
   * never issued (a reservation whose journal is gone) and is given back.
   */
  async reconcile(vm: string): Promise<void> {
    const reserved = await this.call("reading reservations", () =>
      this.store.reservedOf(this.owner(vm)),
    );
    if (reserved.length === 0) return;
    const held = new Set((await scanVm(this.home, vm)).map(slotOf));
    const issued = reserved.filter((r) => held.has(slotOf(r)));
    const orphans = reserved.filter((r) => !held.has(slotOf(r)));
    await this.call("settling reservations", async () => {
      if (issued.length > 0) await this.store.issue(this.owner(vm), issued);
      if (orphans.length > 0) await this.store.release(this.owner(vm), orphans);
    });
  }

  /** How many MACs starting with `prefix` are held (any home). */
  countMacs(prefix: string): Promise<number> {
    return this.call("counting MACs", () => this.store.countMacs(prefix));
  }

  /** The rows of the VMs of this home named `first` to `last` (byte order), by VM. */
  async rowsOfVms(first: string, last: string): Promise<Map<string, RegistryRow[]>> {
    const rows = await this.call("reading rows", () =>
      this.store.rowsOfVms(this.homeId, first, last),
    );
    const out = new Map<string, RegistryRow[]>();
    for (const r of rows) {
      const list = out.get(r.vm);
      if (list) list.push(r);
      else out.set(r.vm, [r]);
    }
    return out;
  }

  /** How many rows each VM of this home has. */
  rowCounts(): Promise<{ vm: string; n: number }[]> {
    return this.call("reading rows", () => this.store.rowCounts(this.homeId));
  }

  rows(): Promise<RegistryRow[]> {
    return this.call("reading rows", () => this.store.rowsOf(this.homeId));
  }

  ownersOf(values: readonly RegistryValue[]): Promise<RegistryRow[]> {
    return this.call("looking up values", () => this.store.owners(values));
  }

  replaceRows(rows: readonly RegistryRow[]): Promise<void> {
    return this.call("rebuilding", () => this.store.replaceHome(this.homeId, rows));
  }

  /** Where audit records also go: the PostgreSQL registry's `glint_audit` table (SQLite: none). */
  auditSink(): AuditSink | undefined {
    const { auditLastSeq, auditPut } = this.store;
    if (!auditLastSeq || !auditPut) return undefined;
    return {
      lastSeq: () => this.call("reading the audit table", () => auditLastSeq(this.homeId)),
      put: (records) =>
        this.call("writing the audit table", () =>
          auditPut(
            this.homeId,
            records.map((r) => ({
              seq: r.seq,
              op_id: r.op_id,
              vm: r.vm,
              operation: r.operation,
              time: r.time,
              hash: r.hash,
              record: canonicalJson(r),
            })),
          ),
        ),
    };
  }

  close(): Promise<void> {
    return this.store.close().catch(() => {});
  }
}

/**
 * Registry rows for the values in a home's files: issued for identities
 * and history, reserved for an operation in progress; one row per slot and
 * VM (a kept value appears in several files).
 */
export function rowsFromFiles(
  homeId: string,
  found: readonly import("./scan.js").FileValue[],
): RegistryRow[] {
  const bySlot = new Map<string, RegistryRow>();
  for (const f of found) {
    const id = `${slotOf(f)}|${f.vm}`;
    const prev = bySlot.get(id);
    const state = f.source === "journal" ? "reserved" : "issued";
    if (prev && (prev.state === "issued" || state === "reserved")) continue;
    bySlot.set(id, {
      cls: f.cls,
      key: f.key,
      field: f.field,
      value: f.value,
      home: homeId,
      vm: f.vm,
      generation: f.generation,
      state,
    });
  }
  return [...bySlot.values()];
}
