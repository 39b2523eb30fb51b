/**
 * System errors become one line that names the path and says what to do;
 * a full or read-only disk leaves no debris; an empty home is refused.
 */
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { fillDisk, listTree, mountTmpfs, remount } from "../support/hostile.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

let disk: { dir: string; unmount: () => Promise<void> };
beforeAll(async () => {
  disk = await mountTmpfs("2m");
});
afterAll(() => disk.unmount());

let home: string;
beforeEach(async () => {
  home = await fs.mkdtemp(path.join(disk.dir, "home-"));
});
afterEach(async () => {
  remount(disk.dir, "rw");
  await fs.rm(path.join(disk.dir, "filler"), { force: true });
  await fs.rm(home, { recursive: true, force: true });
});

/** The error line of a failed command, checked to be one line with no raw errno text. */
function oneLine(r: { code: number | null; stderr: string }): string {
  expect(r.code).toBe(1);
  // Progress lines start with "…"; the error is one line starting with "glint:".
  const lines = r.stderr
    .trim()
    .split("\n")
    .filter((l) => !l.startsWith("… "));
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toMatch(/E[A-Z]{3,}: /);
  return lines[0] ?? "";
}

describe("a full disk", () => {
  it("`create` says which file could not be written and what to do, and leaves no lock debris", async () => {
    await fs.mkdir(path.join(home, ".glint", "vms"), { recursive: true });
    await fillDisk(disk.dir);
    const r = await runCli(["create", "vm", "--home", home]);
    const line = oneLine(r);
    expect(line).toMatch(/no space left on the device while writing \/\S+/);
    expect(line).toContain(home);
    expect(line).toMatch(/free some space/);
    expect((await listTree(home)).filter((n) => n.endsWith(".new"))).toEqual([]);
  });

  it("a `create` that runs out of space halfway names the file and removes what it started", async () => {
    // Room for the lock and the small files, not for everything.
    await fs.writeFile(path.join(disk.dir, "filler"), Buffer.alloc(2 * 1024 * 1024 - 40 * 1024));
    const r = await runCli(["create", "vm", "--home", home]);
    const line = oneLine(r);
    expect(line).toMatch(/no space left on the device while writing \/\S+/);
    expect(await listTree(home)).not.toContain("vm");
    expect((await listTree(home)).filter((n) => n.endsWith(".new") || n.includes(".tmp-"))).toEqual(
      [],
    );
  });
});

describe("a read-only file system", () => {
  it("`create` says the home is read-only and how to proceed", async () => {
    remount(disk.dir, "ro");
    const r = await runCli(["create", "vm", "--home", home]);
    const line = oneLine(r);
    expect(line).toMatch(/read-only file system/);
    expect(line).toContain(home);
  });
});

describe("a directory where a file belongs", () => {
  it("identifiers.json as a directory: `show` names it", async () => {
    const created = await runCli(["create", "vm", "--home", home]);
    expect(created.code, created.stderr).toBe(0);
    const ids = path.join(home, "vm", "identifiers.json");
    await fs.rm(ids);
    await fs.mkdir(ids);
    const line = oneLine(await runCli(["show", "vm", "--home", home]));
    expect(line).toContain(`${ids} is a directory`);
  });
});

describe("an empty home", () => {
  let cwd: string;
  beforeEach(async () => {
    cwd = await tempDir("glint-empty-home-");
  });

  it.each([
    ["GLINT_HOME=", ["create", "x"], { GLINT_HOME: "" }],
    ['--home ""', ["create", "x", "--home", ""], {}],
    ['--home "" before the command', ["--home", "", "list"], {}],
  ])("%s is a usage error (exit 2) and writes nothing", async (_what, args, env) => {
    const r = await runCli(args, { cwd: cwd, env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/empty/);
    expect(await fs.readdir(cwd)).toEqual([]);
  });
});

describe("permission denied", () => {
  it("names the directory glint may not write, and the uid it runs as", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "glint-eacces-"));
    try {
      await fs.chmod(dir, 0o755);
      // Root is never denied: run glint as nobody in a root-owned directory.
      const r = spawnSync(process.execPath, [CLI, "create", "vm", "--home", path.join(dir, "h")], {
        uid: 65534,
        gid: 65534,
        encoding: "utf8",
      });
      const line = oneLine({ code: r.status, stderr: r.stderr });
      expect(line).toBe(
        `glint: permission denied while creating ${path.join(dir, "h")}; check the owner and mode of that path (glint runs as uid 65534)`,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
