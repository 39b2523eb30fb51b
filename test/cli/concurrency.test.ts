/**
 * Many `glint` processes at once: different VMs all succeed with globally
 * unique values; the same VM is created by exactly one of them.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { canonicalHex } from "../../src/identity/formats.js";
import { IDENTIFIER_FIELDS, parseIdentifiers } from "../../src/identity/model.js";
import { lines, runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

const N = 20;
let home: string;
beforeEach(async () => {
  home = await tempDir("glint-conc-");
});

async function locksLeft(): Promise<string[]> {
  const names = await fs.readdir(path.join(home, ".glint")).catch(() => [] as string[]);
  return names.filter((n) => /\.lock$|\.new$|\.takeover$/.test(n));
}

describe(`${N} concurrent glint processes`, () => {
  it("creating different VMs: all succeed and no value appears twice in the home", async () => {
    const names = Array.from({ length: N }, (_, i) => `vm${i}`);
    const results = await Promise.all(names.map((n) => runCli(["create", n, "--home", home])));
    for (const [i, r] of results.entries()) expect(r.code, `${names[i]}: ${r.stderr}`).toBe(0);

    const seen = new Map<string, string>();
    for (const n of names) {
      const file = path.join(home, n, "identifiers.json");
      const ids = parseIdentifiers(JSON.parse(await fs.readFile(file, "utf8")), file);
      for (const f of IDENTIFIER_FIELDS) {
        const key = canonicalHex(ids[f]);
        expect(seen.get(key), `${n}.${f} = ${ids[f]}`).toBeUndefined();
        seen.set(key, `${n}.${f}`);
      }
    }
    expect(seen.size).toBe(N * IDENTIFIER_FIELDS.length);
    expect(await locksLeft()).toEqual([]);
  });

  it("creating the same VM: exactly one succeeds, the others fail with a one-line busy/exists error", async () => {
    const results = await Promise.all(
      Array.from({ length: N }, () => runCli(["create", "same", "--json", "--home", home])),
    );
    const ok = results.filter((r) => r.code === 0);
    const failed = results.filter((r) => r.code !== 0);
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(N - 1);
    for (const r of failed) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(lines(r.stderr), r.stderr).toHaveLength(1);
      // Under --json a failure is one JSON object with a stable code.
      const { error } = JSON.parse(r.stderr);
      expect(["busy", "conflict"]).toContain(error.code);
      expect(error.message).toMatch(/busy|already has identifiers/);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
    // The winner's identity is the one on disk, and nobody archived or replaced it.
    const file = path.join(home, "same", "identifiers.json");
    const onDisk = parseIdentifiers(JSON.parse(await fs.readFile(file, "utf8")), file);
    expect(JSON.parse(ok[0]?.stdout ?? "").identifiers).toEqual({ ...onDisk });
    expect(onDisk.generation).toBe(1);
    await expect(fs.access(path.join(home, "same", "history"))).rejects.toThrow();
    expect(await locksLeft()).toEqual([]);
  });

  it("regenerating the same VM concurrently: every run either succeeds or reports busy, and history accounts for each success", async () => {
    const c = await runCli(["create", "vm", "--home", home]);
    expect(c.code, c.stderr).toBe(0);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        runCli(["regen", i % 2 ? "disk" : "base", "vm", "--yes", "--home", home]),
      ),
    );
    const ok = results.filter((r) => r.code === 0).length;
    expect(ok).toBeGreaterThanOrEqual(1);
    for (const r of results.filter((r) => r.code !== 0)) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/busy/);
    }
    const file = path.join(home, "vm", "identifiers.json");
    const ids = parseIdentifiers(JSON.parse(await fs.readFile(file, "utf8")), file);
    expect(ids.generation).toBe(1 + ok);
    const h = await runCli(["history", "vm", "--json", "--home", home]);
    expect(JSON.parse(h.stdout)).toHaveLength(ok);
  });
});
