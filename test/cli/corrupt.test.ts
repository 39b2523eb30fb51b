/**
 * A corrupted identifiers.json is never silently replaced: every command but
 * `create --force` fails with one line naming the file and leaves it
 * byte-identical; `create --force` replaces it and keeps the original in history/.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseIdentifiers } from "../../src/identity/model.js";
import { lines, runCli } from "../support/cli.js";
import { FIXTURES } from "../support/paths.js";
import { snapshot } from "../support/snapshot.js";
import { tempDir } from "../support/tmp.js";

let home: string;
let file: string;

const CORRUPTIONS: [string, () => Promise<Buffer>][] = [
  [
    "truncated JSON",
    async () => {
      const whole = await fs.readFile(file);
      return whole.subarray(0, Math.floor(whole.length / 2));
    },
  ],
  [
    "valid JSON with a 40-character machine_id",
    async () => {
      const ids = JSON.parse(await fs.readFile(file, "utf8"));
      ids.machine_id = "a1b2c3d4e5f6789012345678901234567890abcd";
      return Buffer.from(`${JSON.stringify(ids, null, 2)}\n`);
    },
  ],
  [
    "the seed's own (invalid) example",
    () => fs.readFile(path.join(FIXTURES, "seed-invalid-machine-id.json")),
  ],
  ["an empty file", async () => Buffer.alloc(0)],
];

// One `glint create` for the whole file; each test gets a copy of that home.
let template: string;
beforeAll(async () => {
  template = await tempDir("glint-corrupt-template-");
  const r = await runCli(["create", "vm", "--home", template]);
  expect(r.code, r.stderr).toBe(0);
});
beforeEach(async () => {
  home = await tempDir("glint-corrupt-");
  await fs.cp(template, home, { recursive: true });
  file = path.join(home, "vm", "identifiers.json");
});

describe.each(CORRUPTIONS)("identifiers.json holding %s", (_what, corrupt) => {
  it.each([
    [["show", "vm"]],
    [["show", "vm", "--json"]],
    [["regen", "disk", "vm", "--yes"]],
    [["regen", "base", "vm", "--yes"]],
    [["nuke", "vm", "--yes"]],
    [["nuke", "vm"]],
    [["create", "vm"]],
  ])("glint %j fails with one line naming the file and leaves it untouched", async (args) => {
    const bad = await corrupt();
    await fs.writeFile(file, bad);
    const before = await snapshot(home);
    const r = await runCli([...args, "--home", home]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe("");
    expect(lines(r.stderr), r.stderr).toHaveLength(1);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain("--force");
    expect(Buffer.compare(await fs.readFile(file), bad)).toBe(0);
    // Nothing in the VM (or the home) changed: no archive, no reset, no leftovers.
    const after = await snapshot(home);
    delete after[".glint/generation"];
    delete before[".glint/generation"];
    expect(after).toEqual(before);
  });

  it("list and history still work and report the VM as unusable", async () => {
    await fs.writeFile(file, await corrupt());
    const l = await runCli(["list", "--json", "--home", home]);
    expect(l.code, l.stderr).toBe(0);
    const rows = JSON.parse(l.stdout) as { name: string; ok: boolean; error?: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]?.ok).toBe(false);
    expect(rows[0]?.error).toContain(file);
    const h = await runCli(["history", "vm", "--home", home]);
    expect(h.code, h.stderr).toBe(0);
  });

  it("create --force replaces it and keeps the corrupt original in history/", async () => {
    const bad = await corrupt();
    await fs.writeFile(file, bad);
    const r = await runCli(["create", "vm", "--force", "--json", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    const fresh = parseIdentifiers(JSON.parse(await fs.readFile(file, "utf8")), file);
    expect(JSON.parse(r.stdout).identifiers).toEqual({ ...fresh });
    expect(fresh.generation).toBe(1);
    const hist = (await fs.readdir(path.join(home, "vm", "history"))).filter((n) =>
      n.includes("_identifiers-"),
    );
    expect(hist).toHaveLength(1);
    const kept = await fs.readFile(path.join(home, "vm", "history", hist[0] ?? ""));
    expect(Buffer.compare(kept, bad)).toBe(0);
    const h = await runCli(["history", "vm", "--json", "--home", home]);
    expect(h.code, h.stderr).toBe(0);
    const entries = JSON.parse(h.stdout) as {
      reason: string;
      identifiers: unknown;
      error: string;
    }[];
    expect(entries).toHaveLength(1);
    expect(entries[0]?.reason).toBe("fresh");
    expect(entries[0]?.identifiers).toBeNull();
    expect(entries[0]?.error.length).toBeGreaterThan(0);
    // And the VM is usable again.
    const s = await runCli(["regen", "disk", "vm", "--yes", "--home", home]);
    expect(s.code, s.stderr).toBe(0);
  });
});
