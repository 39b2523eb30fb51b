/**
 * With the PostgreSQL registry, audit records also go to its `glint_audit`
 * table: two homes (two hosts) give one fleet trail, each record stored as
 * the canonical line of the home's log.
 */
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storePaths } from "../../src/vm/layout.js";
import { runCliOk } from "../support/cli.js";
import { type PgServer, startPostgres } from "../support/postgres.js";
import { tempDir } from "../support/tmp.js";

interface PgClient {
  connect(): Promise<void>;
  query(text: string): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}
const { Client } = createRequire(import.meta.url)("pg") as {
  Client: new (o: { connectionString: string }) => PgClient;
};

let pg: PgServer;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.destroy();
});

describe("the audit table of a PostgreSQL registry", () => {
  it("holds every record of every home sharing the registry, as in the local logs", async () => {
    const dir = await tempDir("glint-audit-pg-");
    const homes = [path.join(dir, "host-a"), path.join(dir, "host-b")];
    const env = { GLINT_REGISTRY: pg.url };
    for (const home of homes) {
      await runCliOk(["create", "web", "--home", home], { env });
      await runCliOk(["nuke", "web", "--yes", "--home", home], { env });
    }
    await runCliOk(["edit", "web", "--cpus", "2", "--yes", "--home", homes[0] ?? ""], { env });
    const client = new Client({ connectionString: pg.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        "SELECT home, seq, operation, vm, record FROM glint_audit ORDER BY home, seq",
      );
      expect(rows).toHaveLength(5);
      for (const home of homes) {
        const id = (await fs.readFile(storePaths(home).homeId, "utf8")).trim();
        const local = (await fs.readFile(storePaths(home).audit, "utf8")).trim().split("\n");
        const remote = rows.filter((r) => r.home === id);
        expect(remote.map((r) => r.record)).toEqual(local);
        expect(remote.map((r) => Number(r.seq))).toEqual(local.map((_, i) => i + 1));
      }
      expect(rows.map((r) => r.operation).sort()).toEqual([
        "create",
        "create",
        "edit",
        "nuke",
        "nuke",
      ]);
    } finally {
      await client.end();
    }
  }, 120_000);
});
