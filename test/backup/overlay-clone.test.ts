/**
 * `glint restore --as-clone` of a VM whose disk is an overlay on a base
 * (`glint create --base B --overlay`, backed up `--with-disk`): with its own
 * copy of the base, and with a linked (shared) base. The clone has a distinct
 * identity and TPM, shares no value with the original, the registry stays
 * consistent, and its overlays name the right backing file; a linked base
 * that is gone refuses the restore with nothing left behind.
 */
import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { readEkFingerprint } from "../../src/firmware/index.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/model.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

const exec = promisify(execFile);
let dir: string;
let home: string;
let base: string;

const g = (...args: string[]) => runCliOk([...args, "--home", home]);
const glint = (...args: string[]) => runCli([...args, "--home", home]);

interface ImageInfo {
  "backing-filename"?: string;
  "full-backing-filename"?: string;
}

async function info(file: string): Promise<ImageInfo> {
  const { stdout } = await exec("qemu-img", ["info", "--output=json", "--force-share", file]);
  return JSON.parse(stdout) as ImageInfo;
}

/** Every file under `root` (following no links), as absolute paths. */
async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  }
  return out;
}

/** The values of `ids` (every identifier and extra MAC) as strings to look for. */
function valuesOf(ids: SystemIdentifiers): string[] {
  const values = IDENTIFIER_FIELDS.map((f) => String(ids[f]));
  return [...values, ...(ids.extra_macs ?? [])];
}

/** Expect no file of VM `clone` to contain any identifier value of `original`. */
async function expectNothingShared(clone: string, original: SystemIdentifiers): Promise<void> {
  const values = valuesOf(original);
  for (const file of await files(path.join(home, clone))) {
    const data = await fs.readFile(file);
    for (const v of values) {
      expect(data.includes(v), `${path.relative(home, file)} holds ${v}`).toBe(false);
      expect(data.includes(v.toUpperCase()), `${path.relative(home, file)} holds ${v}`).toBe(false);
    }
  }
}

/** Everything under `home` (names relative to it), sorted, without VM lock files. */
async function tree(): Promise<string[]> {
  const entries = await fs.readdir(home, { recursive: true });
  return entries
    .map(String)
    .filter((n) => !n.startsWith(".glint/vms/"))
    .sort();
}

beforeAll(async () => {
  dir = await tempDir("glint-backup-overlay-");
  home = path.join(dir, "home");
  base = path.join(dir, "base.qcow2");
  await exec("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
}, 60_000);

describe("restore --as-clone of a VM with an overlay", () => {
  it("with its own copy of the base: a distinct identity and TPM, the overlay on the clone's base", async () => {
    await g("create", "ov", "--base", base, "--overlay", "--firmware", "uefi", "--tpm");
    const archive = path.join(dir, "ov.glint.tar.gz");
    await g("backup", "ov", "-o", archive, "--with-disk");
    const original = await readIds(home, "ov");
    const ek = await readEkFingerprint(path.join(home, "ov", "tpm"));

    await g("restore", archive, "--as", "ov-clone", "--as-clone");
    const clone = await readIds(home, "ov-clone");
    for (const f of IDENTIFIER_FIELDS) expect(clone[f], f).not.toBe(original[f]);
    expect(await readEkFingerprint(path.join(home, "ov-clone", "tpm"))).not.toBe(ek);
    // The original is untouched.
    expect(await readIds(home, "ov")).toEqual(original);
    expect(await readEkFingerprint(path.join(home, "ov", "tpm"))).toBe(ek);
    await expectNothingShared("ov-clone", original);
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);

    // The clone's overlay is backed by the clone's own base copy, not the original's.
    const cloneDir = path.join(home, "ov-clone");
    const overlay = await info(path.join(cloneDir, "overlay.qcow2"));
    expect(overlay["backing-filename"]).toBe("base.qcow2");
    expect(overlay["full-backing-filename"]).toBe(path.join(cloneDir, "base.qcow2"));
    expect((await fs.lstat(path.join(cloneDir, "base.qcow2"))).isFile()).toBe(true);
    // The restored overlay stays in history/, rebased so that it still reads its base.
    const kept = (await fs.readdir(path.join(cloneDir, "history"))).filter((n) =>
      n.endsWith(".qcow2"),
    );
    expect(kept).toHaveLength(1);
    const restored = await info(path.join(cloneDir, "history", kept[0] ?? ""));
    expect(restored["backing-filename"]).toBe("../base.qcow2");
    expect(path.resolve(restored["full-backing-filename"] ?? "")).toBe(
      path.join(cloneDir, "base.qcow2"),
    );
    // Nothing else of the original's (its UEFI variables, its TPM state) is the clone's past.
    expect(await fs.readdir(path.join(cloneDir, "history"))).toEqual(kept);
  });

  it("with a linked base: the clone links the same base; a base that is gone refuses the restore", async () => {
    await g("create", "ln", "--base", base, "--overlay", "--link-base");
    const archive = path.join(dir, "ln.glint.tar.gz");
    await g("backup", "ln", "-o", archive, "--with-disk");
    const original = await readIds(home, "ln");

    await g("restore", archive, "--as", "ln-clone", "--as-clone");
    const cloneDir = path.join(home, "ln-clone");
    expect(await fs.readlink(path.join(cloneDir, "base.qcow2"))).toBe(base);
    const overlay = await info(path.join(cloneDir, "overlay.qcow2"));
    expect(overlay["backing-filename"]).toBe("base.qcow2");
    expect(overlay["full-backing-filename"]).toBe(path.join(cloneDir, "base.qcow2"));
    const clone = await readIds(home, "ln-clone");
    for (const f of IDENTIFIER_FIELDS) expect(clone[f], f).not.toBe(original[f]);
    await expectNothingShared("ln-clone", original);
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);

    // The shared base is moved away: the clone would have an overlay on nothing.
    const moved = `${base}.moved`;
    await fs.rename(base, moved);
    try {
      const before = await tree();
      for (const extra of [
        ["--as", "ln-clone2", "--as-clone"],
        ["--as", "ln-copy"],
      ]) {
        const r = await glint("restore", archive, ...extra);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toContain(
          `the VM's base.qcow2 is a link to the shared base image ${base}, which no longer exists`,
        );
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(await tree()).toEqual(before);
      }
      expect(existsSync(path.join(home, "ln-clone2"))).toBe(false);
    } finally {
      await fs.rename(moved, base);
    }
  });
});
