/**
 * The embedded registry: SQLite in `<home>/.glint/registry.db` (or any
 * file given with `--registry`), through better-sqlite3, in WAL mode. Its
 * calls are synchronous; each method is one transaction (BEGIN IMMEDIATE
 * for writes, so that two processes serialise instead of failing).
 */
import { statfsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { ValueField } from "../identity/model.js";
import { systemError } from "../vm/syserror.js";
import type {
  BatchItem,
  IndexEntry,
  Owner,
  RegistryRow,
  RegistryStore,
  RegistryValue,
  RowState,
  ValueClass,
} from "./model.js";
import { COLUMNS, SCHEMA } from "./sql.js";

interface Statement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  raw(toggle: boolean): Statement;
}
interface Database {
  pragma(source: string): unknown;
  exec(source: string): void;
  prepare(source: string): Statement;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate(...args: A): R };
  close(): void;
}
type DatabaseCtor = new (file: string, options?: { timeout?: number }) => Database;

interface DbRow {
  cls: ValueClass;
  key: string;
  field: ValueField;
  value: string;
  home: string;
  vm: string;
  generation: number;
  state: RowState;
}

function toRow(r: DbRow): RegistryRow {
  return {
    cls: r.cls,
    key: r.key,
    field: r.field,
    value: r.value,
    home: r.home,
    vm: r.vm,
    generation: r.generation,
    state: r.state,
  };
}

/**
 * SQLite reports a full disk as SQLITE_FULL, or (WAL's shared memory on a
 * full tmpfs) as an I/O error: with less than a megabyte left, say so as
 * the system error it is.
 */
export function sqliteSystemError(error: unknown, file: string): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !/^SQLITE_(FULL|IOERR|READONLY|CANTOPEN)/.test(code))
    return error;
  let errno = code.startsWith("SQLITE_READONLY") ? "EROFS" : undefined;
  if (code === "SQLITE_FULL") errno = "ENOSPC";
  if (errno === undefined && !code.startsWith("SQLITE_CANTOPEN")) {
    try {
      const st = statfsSync(path.dirname(file));
      if (st.bavail * st.bsize < 1024 * 1024) errno = "ENOSPC";
    } catch {}
  }
  if (errno === undefined) return error;
  return systemError(Object.assign(new Error(errno), { code: errno, path: file }), file);
}

export function openSqlite(file: string): RegistryStore {
  let store: RegistryStore;
  try {
    store = openSqliteUnchecked(file);
  } catch (error) {
    throw sqliteSystemError(error, file);
  }
  // Every later call too.
  const guarded: Record<string, unknown> = { description: store.description };
  for (const [name, fn] of Object.entries(store)) {
    if (typeof fn !== "function") continue;
    guarded[name] = async (...args: unknown[]) => {
      try {
        return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      } catch (error) {
        throw sqliteSystemError(error, file);
      }
    };
  }
  return guarded as unknown as RegistryStore;
}

function openSqliteUnchecked(file: string): RegistryStore {
  // Loaded here only: the commands that never draw or check values do not need it.
  const Db = createRequire(import.meta.url)("better-sqlite3") as DatabaseCtor;
  const db = new Db(file, { timeout: 60_000 });
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  // A large home's unique index does not fit SQLite's default 2 MB cache.
  db.pragma("cache_size = -65536");
  db.transaction(() => {
    for (const sql of SCHEMA) db.exec(sql);
  }).immediate();
  const q = {
    find: db.prepare("SELECT * FROM glint_values WHERE cls = ? AND key = ?"),
    insert: db.prepare(
      `INSERT INTO glint_values (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    release: db.prepare(
      "DELETE FROM glint_values WHERE cls = ? AND key = ? AND home = ? AND vm = ? AND state = 'reserved'",
    ),
    issue: db.prepare(
      "UPDATE glint_values SET state = 'issued', updated_at = ? WHERE cls = ? AND key = ? AND home = ? AND vm = ?",
    ),
    issueVm: db.prepare(
      "UPDATE glint_values SET state = 'issued', updated_at = ? WHERE home = ? AND vm = ? AND state = 'reserved'",
    ),
    rowsOf: db.prepare("SELECT * FROM glint_values WHERE home = ? ORDER BY vm, field"),
    rowsOfVms: db.prepare(
      "SELECT * FROM glint_values WHERE home = ? AND vm >= ? AND vm <= ? ORDER BY vm",
    ),
    rowCounts: db.prepare("SELECT vm, count(*) AS n FROM glint_values WHERE home = ? GROUP BY vm"),
    reservedOf: db.prepare(
      "SELECT * FROM glint_values WHERE home = ? AND vm = ? AND state = 'reserved'",
    ),
    deleteHome: db.prepare("DELETE FROM glint_values WHERE home = ?"),
    countMacs: db.prepare(
      "SELECT count(*) AS n FROM glint_values WHERE cls = 'mac' AND key > ? AND key < ?",
    ),
    imported: db.prepare("SELECT 1 FROM glint_homes WHERE home = ?"),
    putEntry: db.prepare(
      "INSERT INTO glint_vms (home, vm, data, stamp, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (home, vm) DO UPDATE SET data = excluded.data, stamp = excluded.stamp, updated_at = excluded.updated_at",
    ),
    index: db.prepare("SELECT vm, data, stamp FROM glint_vms WHERE home = ?"),
    indexPage: db.prepare(
      "SELECT vm, data, stamp FROM glint_vms WHERE home = ? AND vm > ? ORDER BY vm LIMIT ?",
    ),
    indexed: db.prepare("SELECT 1 FROM glint_indexed WHERE home = ?"),
    deleteIndex: db.prepare("DELETE FROM glint_vms WHERE home = ?"),
    markIndexed: db.prepare(
      "INSERT INTO glint_indexed (home, indexed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
    ),
    markImported: db.prepare(
      "INSERT INTO glint_homes (home, path, imported_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    ),
  };
  const now = () => new Date().toISOString();
  const insert = (r: RegistryRow, at: string): boolean =>
    q.insert.run(r.cls, r.key, r.field, r.value, r.home, r.vm, r.generation, r.state, at, at)
      .changes === 1;
  const find = (v: Pick<RegistryValue, "cls" | "key">) =>
    q.find.get(v.cls, v.key) as DbRow | undefined;

  const reserve = db.transaction(
    (owner: Owner, generation: number, values: readonly RegistryValue[]): RegistryValue[] => {
      const taken = values.filter((v) => find(v) !== undefined);
      if (taken.length > 0) return taken;
      const at = now();
      for (const v of values) insert({ ...v, ...owner, generation, state: "reserved" }, at);
      return [];
    },
  );
  const claim = db.transaction((rows: readonly RegistryRow[]): RegistryRow[] => {
    const at = now();
    const refused: RegistryRow[] = [];
    for (const r of rows) {
      if (insert(r, at)) continue;
      const held = find(r);
      if (held && (held.home !== r.home || held.vm !== r.vm)) refused.push(toRow(held));
    }
    return refused;
  });
  const replaceHome = db.transaction((home: string, rows: readonly RegistryRow[]) => {
    q.deleteHome.run(home);
    const at = now();
    for (const r of rows) {
      if (!insert(r, at)) throw new Error(`${r.field} ${r.value} is held twice`);
    }
  });
  const release = db.transaction((owner: Owner, values: readonly RegistryValue[]) => {
    for (const v of values) q.release.run(v.cls, v.key, owner.home, owner.vm);
  });
  const issueAt = (owner: Owner, values: readonly RegistryValue[], at: string) => {
    for (const v of values) q.issue.run(at, v.cls, v.key, owner.home, owner.vm);
  };
  const issue = db.transaction(
    (owner: Owner, values: readonly RegistryValue[], entry: IndexEntry | undefined) => {
      const at = now();
      issueAt(owner, values, at);
      if (entry) q.putEntry.run(owner.home, entry.vm, entry.data, entry.stamp, at);
    },
  );
  const reserveMany = db.transaction((home: string, items: readonly BatchItem[]): string[] => {
    const at = now();
    const refused: string[] = [];
    const ins = q.insert;
    for (const item of items) {
      const { vm, generation, values } = item;
      let n = 0;
      for (const v of values) {
        const r = ins.run(v.cls, v.key, v.field, v.value, home, vm, generation, "reserved", at, at);
        if (r.changes !== 1) break;
        n++;
      }
      if (n === values.length) continue;
      // A value is held already: this VM gets none of its values.
      for (const v of values.slice(0, n)) q.release.run(v.cls, v.key, home, vm);
      refused.push(vm);
    }
    return refused;
  });
  const settleMany = db.transaction(
    (
      home: string,
      issued: readonly (BatchItem & { entry: IndexEntry })[],
      released: readonly BatchItem[],
    ) => {
      const at = now();
      for (const item of issued) {
        // A new VM's reserved rows are exactly the batch's values.
        q.issueVm.run(at, home, item.vm);
        q.putEntry.run(home, item.entry.vm, item.entry.data, item.entry.stamp, at);
      }
      for (const item of released)
        for (const v of item.values) q.release.run(v.cls, v.key, home, item.vm);
    },
  );
  const replaceIndex = db.transaction((home: string, entries: readonly IndexEntry[]) => {
    q.deleteIndex.run(home);
    const at = now();
    for (const e of entries) q.putEntry.run(home, e.vm, e.data, e.stamp, at);
    q.markIndexed.run(home, at);
  });

  return {
    description: `SQLite registry ${file}`,
    async owners(values) {
      const out: RegistryRow[] = [];
      for (const v of values) {
        const r = find(v);
        if (r) out.push(toRow(r));
      }
      return out;
    },
    async reserve(owner, generation, values) {
      return reserve.immediate(owner, generation, values);
    },
    async release(owner, values) {
      release.immediate(owner, values);
    },
    async issue(owner, values, entry) {
      issue.immediate(owner, values, entry);
    },
    async reserveMany(home, items) {
      return reserveMany.immediate(home, items);
    },
    async settleMany(home, issued, released) {
      settleMany.immediate(home, issued, released);
    },
    async index(home) {
      if (q.indexed.get(home) === undefined) return undefined;
      return q.index.all(home) as IndexEntry[];
    },
    async indexPage(home, after, limit) {
      if (q.indexed.get(home) === undefined) return undefined;
      // Rows as arrays: a large home's pages are read faster so.
      const rows = q.indexPage.raw(true).all(home, after, limit) as [string, string, string][];
      return rows.map(([vm, data, stamp]) => ({ vm, data, stamp }));
    },
    async replaceIndex(home, entries) {
      replaceIndex.immediate(home, entries);
    },
    async claim(rows) {
      return claim.immediate(rows);
    },
    async reservedOf(owner) {
      return (q.reservedOf.all(owner.home, owner.vm) as DbRow[]).map(toRow);
    },
    async rowsOfVms(home, first, last) {
      return (q.rowsOfVms.all(home, first, last) as DbRow[]).map(toRow);
    },
    async rowCounts(home) {
      return q.rowCounts.all(home) as { vm: string; n: number }[];
    },
    async rowsOf(home) {
      return (q.rowsOf.all(home) as DbRow[]).map(toRow);
    },
    async replaceHome(home, rows) {
      replaceHome.immediate(home, rows);
    },
    async countMacs(prefix) {
      // Within the unique index: every key after "prefix:" and before "prefix;".
      return (q.countMacs.get(`${prefix}:`, `${prefix};`) as { n: number }).n;
    },
    async imported(home) {
      return q.imported.get(home) !== undefined;
    },
    async markImported(home, path) {
      q.markImported.run(home, path, now());
    },
    async close() {
      db.close();
    },
  };
}
