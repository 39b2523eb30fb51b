/**
 * `glint history` lists the NVRAM, TPM state and overlays archived with
 * each generation (with sizes); `glint history prune VM… --keep N` removes
 * the oldest generations, after confirming, keeping the registry consistent.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = path.join(await tempDir("glint-cli-prune-"), "home");
});

const glint = (...args: string[]) => runCli(["--home", home, ...args]);
const ok = (...args: string[]) => runCliOk(["--home", home, ...args]);

interface Entry {
  vm: string;
  reason: string;
  identifiers: { generation: number } | null;
  files: { file: string; kind: string; reason: string; size: number }[];
}
const history = async (vm: string) => JSON.parse(await ok("history", vm, "--json")) as Entry[];

/** A UEFI + TPM VM with three archived generations and a reset since. */
async function vmWithHistory(vm: string): Promise<void> {
  await ok("create", vm, "--firmware", "uefi", "--tpm", "--no-sysprep");
  for (let i = 0; i < 3; i++) await ok("nuke", vm, "--yes");
  await ok("reset", "uefi", vm, "--yes");
}

describe("glint history", () => {
  it("lists each generation's archived NVRAM and TPM state with sizes, and what was archived since", async () => {
    await vmWithHistory("h");
    const entries = await history("h");
    expect(entries.map((e) => e.identifiers?.generation ?? null)).toEqual([1, 2, 3, null]);
    for (const e of entries.slice(0, 3)) {
      expect(e.files.map((f) => `${f.kind}:${f.reason}`).sort()).toEqual([
        "tpm:nuke",
        "uefi-nvram:nuke",
      ]);
      for (const f of e.files) {
        expect(f.size).toBe((await fs.stat(f.file)).size);
        expect(f.size).toBeGreaterThan(0);
      }
    }
    expect(entries[3]).toMatchObject({ reason: "current", identifiers: null });
    expect(entries[3]?.files.map((f) => `${f.kind}:${f.reason}`)).toEqual([
      "uefi-nvram:reset-uefi",
    ]);
    const text = await ok("history", "h");
    expect(text).toMatch(/archived uefi-nvram\s+\d+(\.\d)? KiB\s+\S+_nuke_uefi-instance-/);
    expect(text).toMatch(/archived during the current generation:\n\s+archived uefi-nvram/);
  });
});

describe("glint history prune", () => {
  it("needs confirmation, then removes the oldest generations and their files; the registry stays consistent", async () => {
    await vmWithHistory("h");
    const before = await history("h");
    const refused = await glint("history", "prune", "h", "--keep", "1");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    expect(await history("h")).toEqual(before);

    const out = JSON.parse(await ok("history", "prune", "h", "--keep", "1", "--yes", "--json"));
    expect(out.vm).toBe("h");
    expect(out.removed.filter((f: { kind: string }) => f.kind === "identifiers")).toHaveLength(2);
    expect(out.removed).toHaveLength(6);
    const after = await history("h");
    expect(after.map((e) => e.identifiers?.generation ?? null)).toEqual([3, null]);
    expect(after[0]?.files).toEqual(before[2]?.files);
    for (const e of before.slice(0, 2)) {
      for (const f of e.files) expect(existsSync(f.file)).toBe(false);
    }
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
    // Nothing left to prune: a no-op.
    expect(await ok("history", "prune", "h", "--keep", "1", "--yes")).toMatch(/nothing to prune/);
    // The registry still refuses the pruned values after a rebuild from the files.
    await ok("registry", "rebuild");
    const again = await glint("registry", "check");
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toMatch(/(\d+) value/);
  });

  it("works on several VMs (--all), one result per VM in --json", async () => {
    await vmWithHistory("a");
    await ok("create", "b", "--no-sysprep");
    const r = await glint("history", "prune", "--all", "--keep", "0", "--yes", "--json");
    expect(r.code, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as {
      vm: string;
      ok: boolean;
      result: { keep: number; removed: unknown[] };
    }[];
    expect(results.map((x) => [x.vm, x.ok, x.result.removed.length])).toEqual([
      ["a", true, 9],
      ["b", true, 0],
    ]);
    expect((await history("a")).map((e) => e.reason)).toEqual(["current"]);
  });

  it("refuses a bad --keep or an unknown VM in one line, changing nothing", async () => {
    await vmWithHistory("h");
    const before = await history("h");
    for (const args of [
      ["h"],
      ["h", "--keep", "-1"],
      ["h", "--keep", "x"],
      ["nope", "--keep", "1"],
    ]) {
      const r = await glint("history", "prune", ...args, "--yes");
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(await history("h")).toEqual(before);
  });
});
