/**
 * Exit codes (0 ok, 1 operation failed, 2 usage) and error output: one line
 * on stderr, no stack trace, nothing created for a rejected name.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type CliResult, lines, runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeAll(async () => {
  home = await tempDir("glint-exit-");
  const r = await runCli(["create", "exists", "--home", home]);
  expect(r.code, r.stderr).toBe(0);
});

function expectOneLineError(r: CliResult): void {
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toContain("node:internal");
  expect(lines(r.stderr), r.stderr).toHaveLength(1);
  expect(r.stderr.trim().length).toBeGreaterThan(0);
}

describe("exit code 0", () => {
  it.each([
    [["list", "--home"]],
    [["show", "--home"]],
    [["show", "exists", "--home"]],
    [["history", "exists", "--home"]],
    [["--version"]],
    [["--help"]],
  ])("glint %j", async (args) => {
    const r = await runCli(args.at(-1) === "--home" ? [...args, home] : args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.length).toBeGreaterThan(0);
  });
});

describe("exit code 1: the operation failed", () => {
  it.each([
    [["show", "missing"], /no identifiers/],
    [["regen", "disk", "missing", "--yes"], /no identifiers/],
    [["regen", "base", "missing", "--yes"], /no identifiers/],
    [["nuke", "missing", "--yes"], /no identifiers/],
    [["history", "missing"], /does not exist/],
    [["create", "exists"], /already has identifiers.*--force/],
  ])("glint %j", async (args, message) => {
    const before = await fs.readFile(path.join(home, "exists", "identifiers.json"), "utf8");
    const r = await runCli([...args, "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expectOneLineError(r);
    expect(r.stderr).toMatch(/^glint: /);
    expect(r.stderr).toMatch(message);
    expect(await fs.readFile(path.join(home, "exists", "identifiers.json"), "utf8")).toBe(before);
    // A failed operation creates no VM directory.
    expect((await fs.readdir(home)).filter((n) => !n.startsWith(".")).sort()).toEqual(["exists"]);
  });
});

describe("exit code 2: bad usage", () => {
  it.each([
    [["frobnicate"]],
    [["create"]],
    [["regen"]],
    [["regen", "disk"]],
    [["regen", "sideways", "exists"]],
    [["nuke"]],
    [["history"]],
    [["create", "x", "--bogus"]],
    [["show", "exists", "--bogus"]],
  ])("glint %j", async (args) => {
    const r = await runCli([...args, "--home", home]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("");
    expectOneLineError(r);
  });

  it("nuke without --yes and without a terminal refuses and changes nothing", async () => {
    const file = path.join(home, "exists", "identifiers.json");
    const before = await fs.readFile(file);
    const r = await runCli(["nuke", "exists", "--home", home]);
    expect(r.code).toBe(2);
    expectOneLineError(r);
    expect(r.stderr).toContain("--yes");
    expect(Buffer.compare(await fs.readFile(file), before)).toBe(0);
    await expect(fs.access(path.join(home, "exists", "history"))).rejects.toThrow();
  });
});

describe("bad VM names", () => {
  const bad = ["../x", "", "Upper", "a".repeat(200), "a/b", "-x", "..", "a b", "vm.1"];

  it.each(
    bad.flatMap((name) =>
      [
        ["create", name],
        ["show", name],
        ["regen", "disk", name, "--yes"],
        ["nuke", name, "--yes"],
        ["history", name],
      ].map((args) => [args] as const),
    ),
  )("glint %j exits 2 with one line and creates nothing", async (args) => {
    const dir = await tempDir("glint-badname-");
    const r = await runCli([...args, "--home", dir]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("");
    expectOneLineError(r);
    expect(await fs.readdir(dir)).toEqual([]);
    // Nothing was created next to the home either (e.g. by "../x").
    await expect(fs.access(path.join(path.dirname(dir), "x"))).rejects.toThrow();
  });

  it("a name that only looks like an option, passed after --, is rejected as a name", async () => {
    const dir = await tempDir("glint-badname-");
    const r = await runCli(["create", "--home", dir, "--", "-x"]);
    expect(r.code).toBe(2);
    expectOneLineError(r);
    expect(r.stderr).toContain("invalid VM name");
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("the message of a very long name is shortened", async () => {
    const r = await runCli(["create", "a".repeat(200), "--home", home]);
    expect(r.stderr.length).toBeLessThan(300);
    expect(r.stderr).toContain("200 characters");
  });
});
