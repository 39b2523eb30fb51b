/**
 * `glint create NAME…` and `glint create 'web-{n}' --count N [--start K]`:
 * bulk creation through the bulk runner, all or nothing per VM, continuing
 * past failures; `glint list` served from the registry's index, and from the
 * files when the home has no registry.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { IDENTIFIER_FIELDS } from "../../src/identity/model.js";
import { valueKey } from "../../src/vm/registry.js";
import { readIds, runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = path.join(await tempDir("glint-bulk-create-"), "home");
});

const glint = (...args: string[]) => runCli([...args, "--home", home]);
const vmsIn = async (dir: string) =>
  (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith(".")).sort();

describe("glint create with several names", () => {
  it("creates each VM completely, with its script and identity.env, and sums up", async () => {
    const r = await glint("create", "a", "b", "c");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^a: created \([0-9a-f-]{36}, 52:54:00(:[0-9a-f]{2}){3}\)$/m);
    expect(r.stdout).toMatch(/^created 3 of 3 VMs in [\d.]+ s$/m);
    expect(await vmsIn(home)).toEqual(["a", "b", "c"]);
    const values: string[] = [];
    for (const vm of ["a", "b", "c"]) {
      const ids = await readIds(home, vm);
      values.push(...IDENTIFIER_FIELDS.map((f) => valueKey(ids[f])));
      expect(existsSync(path.join(home, vm, "shared", "set_identifiers.sh"))).toBe(true);
      const env = await fs.readFile(path.join(home, vm, "shared", "identity.env"), "utf8");
      expect(env).toContain(ids.machine_id);
    }
    expect(new Set(values).size).toBe(values.length);
    // Nothing left behind by the batch.
    expect(await vmsIn(path.join(home, ".glint", "batches"))).toEqual([]);
    expect(await vmsIn(path.join(home, ".glint", "staging"))).toEqual([]);
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/agree: 3 VM\(s\)/);
  });

  it("continues past a VM that fails, lists it at the end and exits 1; --json gives one array", async () => {
    expect((await glint("create", "b")).code).toBe(0);
    const before = await readIds(home, "b");
    const r = await glint("create", "a", "b", "c", "--json");
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      vm: string;
      ok: boolean;
      result?: { vm: string; identifiers: { vm_uuid: string } };
      error?: { code: string; message: string };
    }[];
    expect(out.map((o) => [o.vm, o.ok])).toEqual([
      ["a", true],
      ["b", false],
      ["c", true],
    ]);
    expect(out[0]?.result?.identifiers.vm_uuid).toBe((await readIds(home, "a")).vm_uuid);
    expect(out[1]?.error?.code).toBe("conflict");
    expect(out[1]?.error?.message).toMatch(/already has identifiers/);
    // The failed one is untouched.
    expect(await readIds(home, "b")).toEqual(before);
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: "conflict" } });
    const text = await glint("create", "b", "d");
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^b: FAILED: .*already has identifiers/m);
    expect(text.stdout).toMatch(/^created 1 of 2 VMs in [\d.]+ s; 1 failed$/m);
    expect(text.stderr).toMatch(/^glint: b: /m);
  });
});

describe("glint create 'web-{n}' --count N", () => {
  it("numbers from --start, zero-padded to the width of the largest number", async () => {
    const r = await glint("create", "web-{n}", "--count", "12", "--start", "0");
    expect(r.code, r.stderr).toBe(0);
    expect(await vmsIn(home)).toEqual(
      Array.from({ length: 12 }, (_, i) => `web-${String(i).padStart(2, "0")}`),
    );
    const from1 = await glint("create", "db{n}", "--count", "3");
    expect(from1.code, from1.stderr).toBe(0);
    expect((await vmsIn(home)).filter((n) => n.startsWith("db"))).toEqual(["db1", "db2", "db3"]);
    const list = JSON.parse((await glint("list", "--json")).stdout) as { name: string }[];
    expect(list.map((l) => l.name)).toEqual(await vmsIn(home));
  });

  it.each([
    [["create", "web", "--count", "3"], /needs \{n\}/],
    [["create", "web-{n}"], /give --count N/],
    [["create", "a-{n}", "b-{n}", "--count", "2"], /one name pattern/],
    [["create", "a", "b", "--start", "3"], /--start needs --count/],
    [["create", "ok-1", "bad/name", "ok-2"], /./],
    [["create", "x-{n}", "--count", "0"], /positive integer/],
  ])("glint %j: one-line error, exit 2, nothing created", async (args, message) => {
    const r = await glint(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await vmsIn(home)).toEqual([]);
  });
});

describe("glint list and doctor at scale", () => {
  it("list comes from the registry's index; a VM the index lacks is read from its files", async () => {
    expect((await glint("create", "v-{n}", "--count", "5")).code).toBe(0);
    // Files no process of Glint wrote: a VM directory copied by hand.
    await fs.cp(path.join(home, "v-1"), path.join(home, "copy"), { recursive: true });
    // The index holds what list shows: a file with the mtime and size it was
    // indexed with is not read again...
    const ids = await readIds(home, "v-2");
    const file = path.join(home, "v-2", "identifiers.json");
    const st = await fs.stat(file);
    await fs.writeFile(file, "x".repeat(st.size));
    await fs.utimes(file, st.atimeMs / 1000, st.mtimeMs / 1000);
    // ...but one changed since is.
    await fs.writeFile(path.join(home, "v-4", "identifiers.json"), "not json");
    const list = JSON.parse((await glint("list", "--json")).stdout) as {
      name: string;
      ok: boolean;
      vm_uuid?: string;
    }[];
    expect(list.map((l) => [l.name, l.ok])).toEqual([
      ["copy", true],
      ["v-1", true],
      ["v-2", true],
      ["v-3", true],
      ["v-4", false],
      ["v-5", true],
    ]);
    expect(list.find((l) => l.name === "v-2")?.vm_uuid).toBe(ids.vm_uuid);
    expect(list.find((l) => l.name === "copy")?.vm_uuid).toBe((await readIds(home, "v-1")).vm_uuid);
    // doctor uses the same index: the copy shares every value of v-1.
    const doctor = await glint("doctor", "--json");
    expect(doctor.code).toBe(1);
    const dups = (JSON.parse(doctor.stdout) as { duplicates: { vms: string[] }[] }).duplicates;
    expect(dups).toHaveLength(IDENTIFIER_FIELDS.length);
    await fs.writeFile(file, `${JSON.stringify(ids, null, 2)}\n`);
    for (const d of dups) expect(d.vms).toEqual(["copy", "v-1"]);
    // A VM removed is gone from the list.
    expect((await glint("rm", "v-3", "--yes")).code).toBe(0);
    const after = JSON.parse((await glint("list", "--json")).stdout) as { name: string }[];
    expect(after.map((l) => l.name)).not.toContain("v-3");
  });

  it("a home without a registry is listed from its files, and no registry is made", async () => {
    expect((await glint("create", "p", "q")).code).toBe(0);
    const glintDir = path.join(home, ".glint");
    await fs.rm(glintDir, { recursive: true });
    await fs.writeFile(path.join(home, "q", "identifiers.json"), "{");
    const list = JSON.parse((await glint("list", "--json")).stdout) as {
      name: string;
      ok: boolean;
      error?: string;
    }[];
    expect(list.map((l) => [l.name, l.ok])).toEqual([
      ["p", true],
      ["q", false],
    ]);
    expect(list[1]?.error).toMatch(/identifiers\.json/);
    expect(existsSync(path.join(glintDir, "registry.db"))).toBe(false);
  });
});
