/**
 * The shared registry on a real PostgreSQL (started in a temp directory by
 * test/support/postgres.ts): two homes stand for two hosts.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/model.js";
import { UuidManager } from "../../src/manager.js";
import { valueKey } from "../../src/vm/registry.js";
import { runCli } from "../support/cli.js";
import { type PgServer, startPostgres } from "../support/postgres.js";
import { streamRandom } from "../support/random.js";
import { tempDir } from "../support/tmp.js";

let pg: PgServer;
let dir: string;
beforeAll(async () => {
  pg = await startPostgres();
  dir = await tempDir("glint-pg-homes-");
}, 60_000);
afterAll(async () => {
  await pg?.destroy();
});

/** Every value in every identifiers.json under `homes`, as comparison keys. */
async function allValues(homes: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const home of homes) {
    for (const vm of await fs.readdir(home)) {
      if (vm.startsWith(".")) continue;
      const ids = JSON.parse(
        await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"),
      ) as SystemIdentifiers;
      out.push(...IDENTIFIER_FIELDS.map((f) => valueKey(ids[f])));
    }
  }
  return out;
}

const cli = (home: string, ...args: string[]) =>
  runCli([...args, "--home", home], { env: { GLINT_REGISTRY: pg.url } });

describe("a PostgreSQL registry shared by two hosts", () => {
  it("a forced collision through the same random stream on the other host is drawn again", async () => {
    const same = () => streamRandom(new Uint8Array(0), "pg-same");
    const a = new UuidManager({
      home: path.join(dir, "fa"),
      steps: {},
      registry: pg.url,
      random: same(),
    });
    const b = new UuidManager({
      home: path.join(dir, "fb"),
      steps: {},
      registry: pg.url,
      random: same(),
    });
    const first = (await a.generateFreshIdentifiers("vm")).identifiers;
    const second = (await b.generateFreshIdentifiers("vm")).identifiers;
    const firstKeys = IDENTIFIER_FIELDS.map((f) => valueKey(first[f]));
    for (const f of IDENTIFIER_FIELDS) expect(firstKeys).not.toContain(valueKey(second[f]));
    await Promise.all([a.close(), b.close()]);
  });

  it("16 concurrent creates on each of two homes: 0 duplicate values across all 32", async () => {
    const homes = [path.join(dir, "host-a"), path.join(dir, "host-b")];
    const runs = await Promise.all(
      homes.flatMap((home) =>
        Array.from({ length: 16 }, (_, i) => cli(home, "create", `vm-${i}`, "--json")),
      ),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const values = await allValues(homes);
    expect(values).toHaveLength(32 * IDENTIFIER_FIELDS.length);
    expect(new Set(values).size).toBe(values.length);
    for (const home of homes) {
      const check = await cli(home, "registry", "check");
      expect(check.code, check.stderr).toBe(0);
      expect(check.stdout).toMatch(/registry and files agree: 16 VM\(s\)/);
      // list reads the PostgreSQL index, in name order (byte order).
      const list = await cli(home, "list", "--json");
      expect(list.code, list.stderr).toBe(0);
      const rows = JSON.parse(list.stdout) as { name: string; ok: boolean; vm_uuid: string }[];
      const names = Array.from({ length: 16 }, (_, i) => `vm-${i}`).sort();
      expect(rows.map((r) => [r.name, r.ok])).toEqual(names.map((n) => [n, true]));
      const ids = JSON.parse(
        await fs.readFile(path.join(home, "vm-7", "identifiers.json"), "utf8"),
      );
      expect(rows.find((r) => r.name === "vm-7")?.vm_uuid).toBe(ids.vm_uuid);
    }
  }, 120_000);

  it("PostgreSQL stopped midway: one-line errors, no VM half-created; restarted: creation resumes", async () => {
    const home = path.join(dir, "outage");
    const results = [];
    for (let i = 0; i < 6; i++) {
      if (i === 3) await pg.stop();
      results.push(await cli(home, "create", `vm-${i}`));
    }
    for (const r of results.slice(0, 3)) expect(r.code, r.stderr).toBe(0);
    for (const r of results.slice(3)) {
      expect(r.code).toBe(1);
      const lines = r.stderr
        .trim()
        .split("\n")
        .filter((l: string) => l.startsWith("glint:"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/PostgreSQL registry.*check that the registry is reachable/);
    }
    const json = await cli(home, "create", "vm-json", "--json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout || json.stderr)).toMatchObject({ error: { code: "registry" } });
    // Only the three complete VMs exist.
    expect((await fs.readdir(home)).filter((n) => !n.startsWith(".")).sort()).toEqual([
      "vm-0",
      "vm-1",
      "vm-2",
    ]);
    await pg.start();
    // Stopped again while eight creates run at once: each one is complete or absent.
    const during = Array.from({ length: 8 }, (_, i) => cli(home, "create", `mid-${i}`));
    await new Promise((resolve) => setTimeout(resolve, 400));
    await pg.stop();
    for (const [i, r] of (await Promise.all(during)).entries()) {
      const vm = path.join(home, `mid-${i}`);
      if (r.code === 0) {
        await fs.access(path.join(vm, "identifiers.json"));
        await expect(fs.access(path.join(vm, ".pending.json"))).rejects.toThrow();
      } else {
        expect(
          r.stderr
            .trim()
            .split("\n")
            .filter((l: string) => l.startsWith("glint:")),
        ).toHaveLength(1);
        expect(r.stderr).toMatch(/registry/);
        await expect(fs.access(vm)).rejects.toThrow();
      }
    }
    await pg.start();
    for (let i = 0; i < 8; i++) {
      const r = await cli(home, "create", `mid-${i}`);
      // Those that were complete already say so; the others are created now.
      expect(r.code === 0 || /already has identifiers/.test(r.stderr), r.stderr).toBe(true);
    }
    for (let i = 3; i < 6; i++) {
      const r = await cli(home, "create", `vm-${i}`);
      expect(r.code, r.stderr).toBe(0);
    }
    const check = await cli(home, "registry", "check");
    expect(check.code, check.stderr).toBe(0);
    const values = await allValues([home]);
    expect(values).toHaveLength(14 * IDENTIFIER_FIELDS.length);
    expect(new Set(values).size).toBe(values.length);
  }, 120_000);

  it("PostgreSQL stopped during a bulk create: one-line errors, no VM half-created; restarted: it resumes", async () => {
    const home = path.join(dir, "bulk-outage");
    const names = Array.from({ length: 3000 }, (_, i) => `bulk-${String(i + 1).padStart(4, "0")}`);
    const vms = async () =>
      (await fs.readdir(home).catch(() => [] as string[])).filter((n) => !n.startsWith("."));
    const running = cli(home, "create", "bulk-{n}", "--count", "3000", "--json");
    // Stopped once the first batch is in place.
    while ((await vms()).length === 0) await new Promise((r) => setTimeout(r, 20));
    await pg.stop();
    const r = await running;
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      vm: string;
      ok: boolean;
      error?: { code: string; message: string };
    }[];
    const made = await vms();
    expect(made.length).toBeGreaterThan(0);
    expect(made.length).toBeLessThan(3000);
    for (const o of out) {
      if (o.ok) expect(made).toContain(o.vm);
      else {
        expect(o.error?.code, o.vm).toBe("registry");
        expect(o.error?.message).not.toContain("\n");
        expect(made).not.toContain(o.vm);
      }
    }
    // Every VM there is complete.
    for (const vm of made) {
      const ids = JSON.parse(await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"));
      expect(ids.vm_uuid, vm).toMatch(/^[0-9a-f-]{36}$/);
    }
    await pg.start();
    // Creation resumes with the names that are missing.
    const rest = names.filter((vm) => !made.includes(vm));
    const again = await cli(home, "create", ...rest);
    expect(again.code, again.stderr).toBe(0);
    expect(await vms()).toHaveLength(3000);
    const check = await cli(home, "registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const values = await allValues([home]);
    expect(new Set(values).size).toBe(values.length);
  }, 600_000);
});
