/**
 * `glint` end to end through the real binary: create, show, list, regen,
 * nuke and history round-trip through identifiers.json and history/.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { canonicalHex } from "../../src/identity/formats.js";
import { IDENTIFIER_FIELDS, type IdentifierField } from "../../src/identity/model.js";
import { keptFields, POLICIES } from "../../src/identity/policies.js";
import { lines, runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

type Ids = Record<string, string | number>;

let home: string;
beforeAll(async () => {
  home = await tempDir("glint-cli-");
});

async function glint(...args: string[]): Promise<string> {
  const r = await runCli([...args, "--home", home]);
  expect(r.code, `glint ${args.join(" ")}: ${r.stderr}`).toBe(0);
  // stderr may carry progress lines, but no error and no stack trace.
  expect(r.stderr).not.toMatch(/^glint: |^\s+at /m);
  return r.stdout;
}

async function glintJson<T = Ids>(...args: string[]): Promise<T> {
  return JSON.parse(await glint(...args, "--json")) as T;
}

async function fileOf(vm: string): Promise<{ raw: string; ids: Ids }> {
  const raw = await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8");
  return { raw, ids: JSON.parse(raw) as Ids };
}

function changed(a: Ids, b: Ids): IdentifierField[] {
  return IDENTIFIER_FIELDS.filter((f) => a[f] !== b[f]);
}

interface HistoryJson {
  archived_at: string;
  reason: string;
  file: string;
  identifiers: Ids | null;
  error: string | null;
  changes: { field: string; old: string; new: string }[];
}

describe("create → show → regen disk → regen base → nuke → history", () => {
  const vm = "roundtrip";
  const identities: Ids[] = [];

  it("create prints the identity it wrote; show --json matches the file", async () => {
    const created = await glintJson<Record<string, unknown>>("create", vm);
    const { raw, ids } = await fileOf(vm);
    // The whole result: the VM, the policy, the identity, the reset steps, the archive.
    expect(created).toEqual({
      vm,
      policy: "fresh",
      identifiers: ids,
      steps: expect.objectContaining({ "guest-files": "done" }),
      archived: null,
    });
    const shown = await glintJson("show", vm);
    expect(shown).toEqual(ids);
    // Same keys in the same order as the file.
    expect(Object.keys(shown)).toEqual(Object.keys(ids));
    expect(raw.endsWith("\n")).toBe(true);
    expect(ids.generation).toBe(1);
    expect(ids.schema_version).toBe(1);
    expect(await glintJson<HistoryJson[]>("history", vm)).toEqual([]);
    identities.push(ids);
  });

  it("show (text) lists every identifier value", async () => {
    const out = await glint("show", vm);
    const ids = identities[0] as Ids;
    expect(lines(out)[0]).toBe(vm);
    for (const f of IDENTIFIER_FIELDS) expect(out).toContain(String(ids[f]));
  });

  it.each([
    ["disk", ["regen", "disk", "--yes"]],
    ["base", ["regen", "base", "--yes"]],
    ["nuke", ["nuke", "--yes"]],
  ] as const)(
    "%s regenerates exactly its fields, keeps the rest, and grows history",
    async (policy, cmd) => {
      const before = identities.at(-1) as Ids;
      const printed = await glintJson<{ vm: string; policy: string; identifiers: Ids }>(...cmd, vm);
      const { ids: after } = await fileOf(vm);
      expect(printed).toMatchObject({ vm, identifiers: after });
      expect(await glintJson("show", vm)).toEqual(after);
      expect(changed(before, after).sort()).toEqual([...POLICIES[policy].regenerate].sort());
      for (const f of keptFields(POLICIES[policy])) expect(after[f]).toBe(before[f]);
      expect(after.generation).toBe(Number(before.generation) + 1);
      expect(after.created_at === before.created_at).toBe(policy === "disk");
      identities.push(after);

      const history = await glintJson<HistoryJson[]>("history", vm);
      expect(history).toHaveLength(identities.length - 1);
      const last = history.at(-1) as HistoryJson;
      expect(last.reason).toBe(policy);
      expect(last.error).toBeNull();
      expect(last.identifiers).toEqual(before);
      expect(path.dirname(last.file)).toBe(path.join(home, vm, "history"));
      expect(Number.isNaN(Date.parse(last.archived_at))).toBe(false);
    },
  );

  it("history lists every past identity, oldest first (text and JSON)", async () => {
    const history = await glintJson<HistoryJson[]>("history", vm);
    expect(history.map((h) => h.reason)).toEqual(["disk", "base", "nuke"]);
    expect(history.map((h) => h.identifiers)).toEqual(identities.slice(0, -1));
    const text = lines(await glint("history", vm));
    const heads = text.filter((l) => !l.startsWith(" "));
    expect(heads).toHaveLength(3);
    for (const [i, h] of history.entries()) {
      expect(heads[i]).toContain(`replaced by ${h.reason}`);
      expect(heads[i]).toContain(String(h.identifiers?.vm_uuid));
    }
    // What each new generation changed: field, old → new (the last one against the current identity).
    const all = [...history.map((h) => h.identifiers as Ids), identities.at(-1) as Ids];
    for (const [i, h] of history.entries()) {
      const next = all[i + 1] as Ids;
      const changedFields = changed(h.identifiers as Ids, next);
      expect(h.changes.map((c) => c.field)).toEqual(changedFields);
      for (const f of changedFields)
        expect(text).toContainEqual(
          expect.stringMatching(
            new RegExp(`^ {4}${f} +${String(h.identifiers?.[f])} → ${String(next[f])}$`),
          ),
        );
    }
  });

  it("text output of regen marks kept fields", async () => {
    const out = await glint("regen", "disk", vm, "--yes");
    const before = identities.at(-1) as Ids;
    const { ids: after } = await fileOf(vm);
    identities.push(after);
    expect(out).toContain(String(before.vm_uuid));
    expect(out).toContain(String(after.disk_uuid));
    expect(out).toContain("(kept)");
  });
});

describe("several VMs", () => {
  const names = ["alpha", "beta", "gamma"];

  beforeAll(async () => {
    for (const n of names) await glint("create", n);
  });

  it("show --json without a VM gives an array of every VM's name and identity", async () => {
    const all = await glintJson<{ vm: string; ok: boolean; result: Ids }[]>("show");
    expect(Array.isArray(all)).toBe(true);
    const vms = (await fs.readdir(home)).filter((n) => !n.startsWith(".")).sort();
    expect(all).toHaveLength(vms.length);
    for (const [i, vm] of vms.entries())
      expect(all[i]).toEqual({ vm, ok: true, result: (await fileOf(vm)).ids });
  });

  it("list prints a header and one line per VM; list --json one object per VM", async () => {
    const vms = (await fs.readdir(home)).filter((n) => !n.startsWith(".")).sort();
    const out = lines(await glint("list"));
    expect(out).toHaveLength(vms.length + 1);
    for (const [i, vm] of vms.entries()) {
      const row = out[i + 1] ?? "";
      expect(row.split(/\s+/)[0]).toBe(vm);
      expect(row).toContain(String((await fileOf(vm)).ids.mac_address));
    }
    const json = await glintJson<Ids[]>("list");
    expect(json.map((r) => r.name)).toEqual(vms);
    for (const r of json) expect(r.ok).toBe(true);
  });

  it("no value is shared by two VMs", async () => {
    const all = (await glintJson<{ result: Ids }[]>("show")).map((e) => e.result);
    const keys = all.flatMap((ids) => IDENTIFIER_FIELDS.map((f) => canonicalHex(String(ids[f]))));
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe("--json on every command gives parseable JSON", () => {
  it.each([
    [["create", "j1"]],
    [["show", "j1"]],
    [["show"]],
    [["list"]],
    [["regen", "disk", "j1", "--yes"]],
    [["regen", "base", "j1", "--yes"]],
    [["nuke", "j1", "--yes"]],
    [["history", "j1"]],
  ])("glint %j --json", async (args) => {
    const out = await glint(...args, "--json");
    expect(() => JSON.parse(out)).not.toThrow();
    expect(typeof JSON.parse(out)).toBe("object");
  });
});

describe("an empty home", () => {
  it("show --json and list --json give empty arrays; text output says how to start", async () => {
    const dir = await tempDir("glint-empty-");
    for (const cmd of ["show", "list"]) {
      const j = await runCli([cmd, "--json", "--home", dir]);
      expect(j.code, j.stderr).toBe(0);
      expect(JSON.parse(j.stdout)).toEqual([]);
      const t = await runCli([cmd, "--home", dir]);
      expect(t.code, t.stderr).toBe(0);
      expect(t.stdout).toContain("glint create");
    }
  });
});

describe("where the home is", () => {
  it("honours $GLINT_HOME, and --home overrides it", async () => {
    const dir = await tempDir("glint-env-");
    const other = path.join(dir, "other");
    const r = await runCli(["create", "envvm", "--json"], { env: { GLINT_HOME: dir } });
    expect(r.code, r.stderr).toBe(0);
    const ids = JSON.parse(await fs.readFile(path.join(dir, "envvm", "identifiers.json"), "utf8"));
    expect(JSON.parse(r.stdout).identifiers).toEqual(ids);
    const s = await runCli(["show", "envvm", "--json"], { env: { GLINT_HOME: dir } });
    expect(JSON.parse(s.stdout)).toEqual(ids);
    const o = await runCli(["create", "x", "--home", other], { env: { GLINT_HOME: dir } });
    expect(o.code, o.stderr).toBe(0);
    await fs.access(path.join(other, "x", "identifiers.json"));
    await expect(fs.access(path.join(dir, "x"))).rejects.toThrow();
  });

  it("defaults to ./vms_linux relative to the working directory", async () => {
    const dir = await tempDir("glint-cwd-");
    const r = await runCli(["create", "defvm"], { cwd: dir, home: null });
    expect(r.code, r.stderr).toBe(0);
    await fs.access(path.join(dir, "vms_linux", "defvm", "identifiers.json"));
    expect((await fs.readdir(dir)).filter((n) => n !== "vms_linux")).toEqual([]);
    const l = await runCli(["list"], { cwd: dir, home: null });
    expect(l.code).toBe(0);
    expect(l.stdout).toMatch(/^defvm\s/m);
  });
});
