/**
 * The shared registry: PostgreSQL, for several hosts (`--registry
 * postgres://…` or `GLINT_REGISTRY`), through the pure-JavaScript `pg`
 * client. Same schema and constraints as SQLite; each method is one
 * transaction, and a unique violation from a concurrent host is reported as
 * a taken value (the engine draws again).
 */
import { createRequire } from "node:module";
import type { ValueField } from "../identity/model.js";
import type {
  BatchItem,
  IndexEntry,
  RegistryRow,
  RegistryStore,
  RegistryValue,
  RowState,
  ValueClass,
} from "./model.js";
import { AUDIT_SCHEMA, COLUMNS, SCHEMA } from "./sql.js";

interface QueryResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
}
interface Client {
  /** pg's connection; its socket is unref'd between queries (see below). */
  connection?: { stream?: { ref(): void; unref(): void } };
  connect(): Promise<void>;
  query(text: string, values?: unknown[]): Promise<QueryResult>;
  end(): Promise<void>;
  on(event: "error", fn: (error: Error) => void): void;
}
type ClientCtor = new (config: {
  connectionString: string;
  connectionTimeoutMillis?: number;
}) => Client;

/** Serialises the schema creation of concurrent first users. */
const SCHEMA_LOCK = 0x676c696e74;

function toRow(r: Record<string, unknown>): RegistryRow {
  return {
    cls: r.cls as ValueClass,
    key: r.key as string,
    field: r.field as ValueField,
    value: r.value as string,
    home: r.home as string,
    vm: r.vm as string,
    generation: Number(r.generation),
    state: r.state as RowState,
  };
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://…";
  }
}

export async function openPostgres(url: string): Promise<RegistryStore> {
  const { Client } = createRequire(import.meta.url)("pg") as { Client: ClientCtor };
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A dropped connection surfaces as the next query's error.
  client.on("error", () => {});
  await client.connect();
  // The open connection must not keep a finished command alive: its socket
  // holds the process only while a query runs.
  const stream = client.connection?.stream;
  stream?.unref();
  const query = client.query.bind(client);
  client.query = async (text, values) => {
    stream?.ref();
    try {
      return await query(text, values);
    } finally {
      stream?.unref();
    }
  };
  const tx = async <T>(fn: () => Promise<T>): Promise<T> => {
    await client.query("BEGIN");
    try {
      const result = await fn();
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
  };
  await tx(async () => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
    for (const sql of [...SCHEMA, ...AUDIT_SCHEMA]) await client.query(sql);
  });
  const now = () => new Date().toISOString();
  const findAll = async (values: readonly Pick<RegistryValue, "cls" | "key">[]) => {
    if (values.length === 0) return [];
    const r = await client.query(
      "SELECT * FROM glint_values WHERE (cls, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
      [values.map((v) => v.cls), values.map((v) => v.key)],
    );
    return r.rows.map(toRow);
  };
  const insert = async (r: RegistryRow, at: string): Promise<boolean> => {
    const res = await client.query(
      `INSERT INTO glint_values (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING`,
      [r.cls, r.key, r.field, r.value, r.home, r.vm, r.generation, r.state, at],
    );
    return res.rowCount === 1;
  };

  const putEntries = async (home: string, entries: readonly IndexEntry[], at: string) => {
    if (entries.length === 0) return;
    await client.query(
      `INSERT INTO glint_vms (home, vm, data, stamp, updated_at)
       SELECT $1::text, u.vm, u.data, u.stamp, $4::text
       FROM unnest($2::text[], $3::text[], $5::text[]) AS u(vm, data, stamp)
       ON CONFLICT (home, vm) DO UPDATE SET data = excluded.data, stamp = excluded.stamp, updated_at = excluded.updated_at`,
      [home, entries.map((e) => e.vm), entries.map((e) => e.data), at, entries.map((e) => e.stamp)],
    );
  };
  /** Update or delete the rows of many VMs' values at once. */
  const perValue = async (sql: string, home: string, items: readonly BatchItem[], at?: string) => {
    const vms: string[] = [];
    const classes: string[] = [];
    const keys: string[] = [];
    for (const item of items)
      for (const v of item.values) {
        vms.push(item.vm);
        classes.push(v.cls);
        keys.push(v.key);
      }
    if (vms.length === 0) return;
    await client.query(sql, [home, vms, classes, keys, ...(at === undefined ? [] : [at])]);
  };
  const ISSUE_MANY = `UPDATE glint_values g SET state = 'issued', updated_at = $5
    FROM unnest($2::text[], $3::text[], $4::text[]) AS u(vm, cls, key)
    WHERE g.cls = u.cls AND g.key = u.key AND g.home = $1 AND g.vm = u.vm`;
  const RELEASE_MANY = `DELETE FROM glint_values g
    USING unnest($2::text[], $3::text[], $4::text[]) AS u(vm, cls, key)
    WHERE g.cls = u.cls AND g.key = u.key AND g.home = $1 AND g.vm = u.vm AND g.state = 'reserved'`;

  return {
    description: `PostgreSQL registry ${redactUrl(url)}`,
    reserveMany: (home, items) =>
      tx(async () => {
        const held = new Set(
          (await findAll(items.flatMap((i) => i.values))).map((h) => `${h.cls}|${h.key}`),
        );
        const refused = new Set(
          items.filter((i) => i.values.some((v) => held.has(`${v.cls}|${v.key}`))).map((i) => i.vm),
        );
        const free = items.filter((i) => !refused.has(i.vm));
        const rows = free.flatMap((i) =>
          i.values.map((v) => ({ ...v, vm: i.vm, g: i.generation })),
        );
        if (rows.length === 0) return [...refused];
        const at = now();
        const inserted = await client.query(
          `INSERT INTO glint_values (${COLUMNS})
           SELECT cls, key, field, value, $1::text, vm, g, 'reserved', $8::text, $8::text
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[]) AS u(cls, key, field, value, vm, g)
           ON CONFLICT DO NOTHING RETURNING cls, key`,
          [
            home,
            rows.map((r) => r.cls),
            rows.map((r) => r.key),
            rows.map((r) => r.field),
            rows.map((r) => r.value),
            rows.map((r) => r.vm),
            rows.map((r) => r.g),
            at,
          ],
        );
        if (inserted.rows.length < rows.length) {
          // Taken meanwhile by another host: those VMs get nothing.
          const got = new Set(inserted.rows.map((r) => `${String(r.cls)}|${String(r.key)}`));
          const lost = free.filter((i) => i.values.some((v) => !got.has(`${v.cls}|${v.key}`)));
          await perValue(RELEASE_MANY, home, lost);
          for (const i of lost) refused.add(i.vm);
        }
        return [...refused];
      }),
    settleMany: (home, issued, released) =>
      tx(async () => {
        const at = now();
        await perValue(ISSUE_MANY, home, issued, at);
        await putEntries(
          home,
          issued.map((i) => i.entry),
          at,
        );
        await perValue(RELEASE_MANY, home, released);
      }),
    index: async (home) => {
      const built = await client.query("SELECT 1 FROM glint_indexed WHERE home = $1", [home]);
      if (built.rows.length === 0) return undefined;
      const r = await client.query("SELECT vm, data, stamp FROM glint_vms WHERE home = $1", [home]);
      return r.rows.map((row) => ({
        vm: String(row.vm),
        data: String(row.data),
        stamp: String(row.stamp),
      }));
    },
    indexPage: async (home, after, limit) => {
      const built = await client.query("SELECT 1 FROM glint_indexed WHERE home = $1", [home]);
      if (built.rows.length === 0) return undefined;
      // Byte order, as the directory listing is sorted (VM names are ASCII).
      const r = await client.query(
        `SELECT vm, data, stamp FROM glint_vms WHERE home = $1 AND vm COLLATE "C" > $2
           ORDER BY vm COLLATE "C" LIMIT $3`,
        [home, after, limit],
      );
      return r.rows.map((row) => ({
        vm: String(row.vm),
        data: String(row.data),
        stamp: String(row.stamp),
      }));
    },
    replaceIndex: (home, entries) =>
      tx(async () => {
        await client.query("DELETE FROM glint_vms WHERE home = $1", [home]);
        await putEntries(home, entries, now());
        await client.query(
          "INSERT INTO glint_indexed (home, indexed_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
          [home, now()],
        );
      }),
    owners: (values) => findAll(values),
    reserve: (owner, generation, values) =>
      tx(async () => {
        const at = now();
        for (const v of values) {
          if (!(await insert({ ...v, ...owner, generation, state: "reserved" }, at))) {
            // Another process or host holds it: undo the whole reservation.
            throw Object.assign(new Error("taken"), { taken: true });
          }
        }
        return [];
      }).catch(async (error: unknown) => {
        if (!(error as { taken?: boolean }).taken) throw error;
        const held = await findAll(values);
        const slots = new Set(held.map((h) => `${h.cls}|${h.key}`));
        const taken = values.filter((v) => slots.has(`${v.cls}|${v.key}`));
        // Gone again meanwhile (a rolled-back reservation): try once more later.
        return taken.length > 0 ? taken : [...values];
      }),
    release: (owner, values) =>
      tx(async () => {
        for (const v of values)
          await client.query(
            "DELETE FROM glint_values WHERE cls = $1 AND key = $2 AND home = $3 AND vm = $4 AND state = 'reserved'",
            [v.cls, v.key, owner.home, owner.vm],
          );
      }),
    issue: (owner, values, entry) =>
      tx(async () => {
        const at = now();
        for (const v of values)
          await client.query(
            "UPDATE glint_values SET state = 'issued', updated_at = $1 WHERE cls = $2 AND key = $3 AND home = $4 AND vm = $5",
            [at, v.cls, v.key, owner.home, owner.vm],
          );
        if (entry) await putEntries(owner.home, [entry], at);
      }),
    claim: (rows) =>
      tx(async () => {
        const at = now();
        const refused: RegistryRow[] = [];
        for (const r of rows) {
          if (await insert(r, at)) continue;
          const [held] = await findAll([r]);
          if (held && (held.home !== r.home || held.vm !== r.vm)) refused.push(held);
        }
        return refused;
      }),
    reservedOf: async (owner) =>
      (
        await client.query(
          "SELECT * FROM glint_values WHERE home = $1 AND vm = $2 AND state = 'reserved'",
          [owner.home, owner.vm],
        )
      ).rows.map(toRow),
    rowsOfVms: async (home, first, last) =>
      (
        await client.query(
          `SELECT * FROM glint_values WHERE home = $1 AND vm COLLATE "C" >= $2
           AND vm COLLATE "C" <= $3 ORDER BY vm COLLATE "C"`,
          [home, first, last],
        )
      ).rows.map(toRow),
    rowCounts: async (home) =>
      (
        await client.query(
          "SELECT vm, count(*) AS n FROM glint_values WHERE home = $1 GROUP BY vm",
          [home],
        )
      ).rows.map((r) => ({ vm: String(r.vm), n: Number(r.n) })),
    rowsOf: async (home) =>
      (
        await client.query("SELECT * FROM glint_values WHERE home = $1 ORDER BY vm, field", [home])
      ).rows.map(toRow),
    replaceHome: (home, rows) =>
      tx(async () => {
        await client.query("DELETE FROM glint_values WHERE home = $1", [home]);
        const at = now();
        for (const r of rows) {
          if (!(await insert(r, at))) throw new Error(`${r.field} ${r.value} is held twice`);
        }
      }),
    countMacs: async (prefix) =>
      Number(
        (
          await client.query(
            "SELECT count(*) AS n FROM glint_values WHERE cls = 'mac' AND key > $1 AND key < $2",
            [`${prefix}:`, `${prefix};`],
          )
        ).rows[0]?.n ?? 0,
      ),
    imported: async (home) =>
      (await client.query("SELECT 1 FROM glint_homes WHERE home = $1", [home])).rows.length > 0,
    markImported: async (home, path) => {
      await client.query(
        "INSERT INTO glint_homes (home, path, imported_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [home, path, now()],
      );
    },
    auditLastSeq: async (home) =>
      Number(
        (await client.query("SELECT max(seq) AS n FROM glint_audit WHERE home = $1", [home]))
          .rows[0]?.n ?? 0,
      ),
    auditPut: (home, records) =>
      tx(async () => {
        for (const r of records)
          await client.query(
            "INSERT INTO glint_audit (home, seq, op_id, vm, operation, time, hash, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            [home, r.seq, r.op_id, r.vm, r.operation, r.time, r.hash, r.record],
          );
      }),
    close: () => client.end(),
  };
}
