/**
 * Provisioning a VM from a base image: the base must be one self-contained
 * image (no backing chain, no external data file), or be flattened on request.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeEach, describe, expect, it } from "vitest";
import { UuidManager } from "../../src/manager.js";
import { tempDir } from "../support/tmp.js";

const execFileAsync = promisify(execFile);

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-provision-");
});

describe("base images with a backing chain or an external data file", () => {
  let secret: string;
  beforeEach(async () => {
    secret = path.join(home, "secret");
    await fs.writeFile(secret, "root:SECRET-HASH:19000:0:99999:7:::\n".padEnd(65536, "#"), {
      mode: 0o600,
    });
  });

  async function qemuImg(...args: string[]): Promise<void> {
    await execFileAsync("qemu-img", args);
  }

  async function evilBase(name = "evil.qcow2"): Promise<string> {
    const file = path.join(home, name);
    await qemuImg("create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", file);
    return file;
  }

  it("refuses a base with a backing file, saying how to flatten it, and creates nothing", async () => {
    const base = await evilBase();
    const m = new UuidManager({ home });
    await expect(m.createVm("vm", { base })).rejects.toThrow(
      /has a backing file .*secret.*qemu-img convert -O qcow2 .*--flatten-base/,
    );
    await expect(m.createVm("vm", { base, overlay: true, linkBase: true })).rejects.toThrow(
      /backing file/,
    );
    expect(await fs.readdir(home)).not.toContain("vm");
  });

  it("refuses a symlink (chain) that leads to a base with a backing file", async () => {
    const base = await evilBase();
    await fs.symlink(base, path.join(home, "link1.qcow2"));
    await fs.symlink(path.join(home, "link1.qcow2"), path.join(home, "link2.qcow2"));
    const m = new UuidManager({ home });
    await expect(m.createVm("vm", { base: path.join(home, "link2.qcow2") })).rejects.toThrow(
      /backing file/,
    );
    expect(await fs.readdir(home)).not.toContain("vm");
  });

  it("refuses a base with an external data file", async () => {
    const base = path.join(home, "data.qcow2");
    await qemuImg(
      "create",
      "-q",
      "-f",
      "qcow2",
      "-o",
      `data_file=${secret},data_file_raw=on`,
      base,
      "64K",
    );
    await expect(new UuidManager({ home }).createVm("vm", { base })).rejects.toThrow(
      /external data file/,
    );
  });

  it("refuses a relative backing chain that does not resolve, even with --flatten-base", async () => {
    const dir = path.join(home, "images");
    await fs.mkdir(dir);
    const base = path.join(dir, "orphan.qcow2");
    await qemuImg(
      "create",
      "-q",
      "-f",
      "qcow2",
      "-u",
      "-b",
      "gone.qcow2",
      "-F",
      "qcow2",
      base,
      "1M",
    );
    const m = new UuidManager({ home });
    await expect(m.createVm("vm", { base, flattenBase: true })).rejects.toThrow(
      /backing file gone\.qcow2 .*does not resolve/,
    );
    expect(await fs.readdir(home)).not.toContain("vm");
  });

  it("--flatten-base copies a self-contained base (and refuses --link-base)", async () => {
    const shared = path.join(home, "shared.qcow2");
    await qemuImg("create", "-q", "-f", "qcow2", shared, "1M");
    const child = path.join(home, "child.qcow2");
    await qemuImg("create", "-q", "-f", "qcow2", "-b", "shared.qcow2", "-F", "qcow2", child);
    const m = new UuidManager({ home });
    await expect(
      m.createVm("linked", { base: child, flattenBase: true, linkBase: true, overlay: true }),
    ).rejects.toThrow(/--flatten-base .*--link-base/);
    await m.createVm("vm", { base: child, flattenBase: true, overlay: true });
    const { stdout } = await execFileAsync("qemu-img", [
      "info",
      "--output=json",
      "-U",
      path.join(home, "vm", "base.qcow2"),
    ]);
    expect(JSON.parse(stdout)["backing-filename"]).toBeUndefined();
    const config = JSON.parse(await fs.readFile(path.join(home, "vm", "config.json"), "utf8"));
    expect(config.base).toEqual({ source: child, linked: false });
  });
});
