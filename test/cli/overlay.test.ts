/**
 * Overlay replacement by `glint regen disk`: the old overlay is kept in
 * history/ and stays readable (its backing file is rebased), and an overlay
 * left there by an interrupted run is repaired.
 */
import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

const exec = promisify(execFile);
let dir: string;
let home: string;

async function backingOf(file: string): Promise<string> {
  const { stdout } = await exec("qemu-img", ["info", "--output=json", "--force-share", file]);
  return (JSON.parse(stdout) as { "backing-filename": string })["backing-filename"];
}

beforeAll(async () => {
  dir = await tempDir("glint-overlay-");
  home = path.join(dir, "home");
  const base = path.join(dir, "base.qcow2");
  await exec("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
  const r = await runCli(["create", "ov", "--home", home, "--base", base, "--overlay"]);
  expect(r.code, r.stderr).toBe(0);
});

describe("regen disk and the overlay", () => {
  it("keeps the old overlay in history/ with a backing file that exists", async () => {
    const overlay = path.join(home, "ov", "overlay.qcow2");
    const before = (await fs.stat(overlay)).ino;
    const r = await runCli(["regen", "disk", "ov", "--yes", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect((await fs.stat(overlay)).ino).not.toBe(before);
    const history = path.join(home, "ov", "history");
    const kept = (await fs.readdir(history)).filter((n) => n.endsWith(".qcow2"));
    expect(kept).toHaveLength(1);
    const file = path.join(history, kept[0] ?? "");
    expect((await fs.stat(file)).ino).toBe(before);
    const backing = await backingOf(file);
    expect(backing).toBe("../base.qcow2");
    expect(existsSync(path.resolve(history, backing))).toBe(true);
    expect(await backingOf(overlay)).toBe("base.qcow2");
  });

  it("repairs an archived overlay that an interrupted run left with a broken backing path", async () => {
    const history = path.join(home, "ov", "history");
    const broken = path.join(history, "2026-01-01T00-00-00.000Z_disk_overlay-abcdef.qcow2");
    await fs.copyFile(path.join(home, "ov", "overlay.qcow2"), broken);
    expect(await backingOf(broken)).toBe("base.qcow2"); // relative to history/: missing
    const r = await runCli(["regen", "disk", "ov", "--yes", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect(await backingOf(broken)).toBe("../base.qcow2");
  });

  it("--discard-overlay deletes the old overlay instead", async () => {
    const history = path.join(home, "ov", "history");
    const count = (await fs.readdir(history)).filter((n) => n.endsWith(".qcow2")).length;
    const r = await runCli(["regen", "disk", "ov", "--yes", "--discard-overlay", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect((await fs.readdir(history)).filter((n) => n.endsWith(".qcow2"))).toHaveLength(count);
  });
});
