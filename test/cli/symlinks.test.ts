/**
 * Glint never follows a symlink it did not create: a symlinked VM directory,
 * or a symlink in place of any file or directory inside one, is refused by
 * every command (and shown as unusable by `list`), and the link's target is
 * never read, copied or written. Only base.qcow2 made by `--link-base` may be
 * a link.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { snapshot } from "../support/snapshot.js";
import { tempDir } from "../support/tmp.js";

let template: string;
beforeAll(async () => {
  template = await tempDir("glint-symlinks-template-");
  const r = await runCli(["create", "vm", "--home", template]);
  expect(r.code, r.stderr).toBe(0);
});

let root: string;
let home: string;
let outside: string;
beforeEach(async () => {
  root = await tempDir("glint-symlinks-");
  home = path.join(root, "home");
  outside = path.join(root, "outside");
  await fs.cp(template, home, { recursive: true });
  await fs.mkdir(outside);
});

describe("a symlinked VM directory", () => {
  beforeEach(async () => {
    await fs.rename(path.join(home, "vm"), path.join(outside, "vm"));
    await fs.symlink(path.join(outside, "vm"), path.join(home, "vm"));
  });

  it("is listed as unusable by `list`, naming the link", async () => {
    const r = await runCli(["list", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split("\n").find((l) => l.startsWith("vm "));
    expect(line).toMatch(/unusable: .*symbolic link/);
  });

  it.each([
    [["show", "vm"]],
    [["show"]],
    [["qemu-args", "vm"]],
    [["run", "vm", "--dry-run"]],
    [["create", "vm", "--force"]],
    [["regen", "base", "vm", "--yes"]],
    [["nuke", "vm", "--yes"]],
    [["script", "vm"]],
    [["seed", "vm"]],
    [["history", "vm"]],
  ])("is refused by `glint %j`, and its target is left as it was", async (args) => {
    const before = await snapshot(outside);
    const r = await runCli([...args, "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/symbolic link/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await snapshot(outside)).toEqual(before);
  });
});

describe("a symlink inside a VM directory", () => {
  let secret: string;
  beforeEach(async () => {
    secret = path.join(outside, "secret");
    await fs.writeFile(secret, "root:SECRET-HASH:19000:0:99999:7:::\n", { mode: 0o600 });
  });

  async function linkInVm(name: string, target = secret): Promise<void> {
    const file = path.join(home, "vm", name);
    await fs.rm(file, { recursive: true, force: true });
    await fs.symlink(target, file);
  }

  it("identifiers.json → a secret: `show` refuses and prints none of it", async () => {
    await linkInVm("identifiers.json");
    const r = await runCli(["show", "vm", "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/identifiers\.json is a symbolic link/);
    expect(`${r.stdout}${r.stderr}`).not.toContain("SECRET");
  });

  it("identifiers.json → a secret: `create --force` refuses and copies nothing into history/", async () => {
    await linkInVm("identifiers.json");
    const r = await runCli(["create", "vm", "--force", "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/symbolic link/);
    const history = path.join(home, "vm", "history");
    const names = await fs.readdir(history).catch(() => [] as string[]);
    for (const n of names) {
      expect(await fs.readFile(path.join(history, n), "utf8")).not.toContain("SECRET");
    }
    expect(await fs.readlink(path.join(home, "vm", "identifiers.json"))).toBe(secret);
  });

  it.each([
    ["config.json", ["show", "vm"]],
    ["config.json", ["regen", "base", "vm", "--yes"]],
    [".pending.json", ["qemu-args", "vm"]],
    ["seed.iso", ["run", "vm", "--dry-run"]],
    ["overlay.qcow2", ["qemu-args", "vm"]],
    ["uefi-instance.fd", ["regen", "base", "vm", "--yes"]],
    ["base.qcow2", ["qemu-args", "vm"]],
  ])("%s → a secret is refused by `glint %j`", async (name, args) => {
    await linkInVm(name);
    const before = await snapshot(outside);
    const r = await runCli([...args, "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${name} is a symbolic link`);
    expect(await snapshot(outside)).toEqual(before);
  });

  it.each([
    ["history", ["create", "vm", "--force"]],
    ["shared", ["script", "vm"]],
    ["tpm", ["regen", "base", "vm", "--yes"]],
  ])(
    "%s/ → a directory outside is refused by `glint %j`, which writes nothing there",
    async (name, args) => {
      const target = path.join(outside, "dir");
      await fs.mkdir(target);
      await linkInVm(name, target);
      const r = await runCli([...args, "--home", home]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${name} is a symbolic link`);
      expect(await fs.readdir(target)).toEqual([]);
    },
  );
});
