/**
 * `glint restore --as-clone` of a VM whose disk is an overlay on a base
 * (`glint create --base B --overlay`, backed up `--with-disk`): with its own
 * copy of the base, and with a linked (shared) base. The restored overlay is
 * the clone's live disk (a marker file written into the original's overlay
 * is there), re-identified offline: `glint verify` reads the clone's machine-id
 * and filesystem UUIDs from it. The clone has a distinct identity and TPM,
 * shares no value with the original, the registry stays consistent, and its
 * overlay names the right backing file; a linked base that is gone refuses
 * the restore with nothing left behind; a VM made with `--no-sysprep` is
 * cloned with its disk as it was.
 */
import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { readEkFingerprint } from "../../src/firmware/index.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/model.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { type DiskImage, diskImage } from "../support/disk-image.js";
import { allFiles, debugfsCat, extract } from "../support/disk-read.js";
import { tempDir } from "../support/tmp.js";

const exec = promisify(execFile);
let dir: string;
let home: string;
let base: string;
let img: DiskImage;
const MiB = 1024 * 1024;
const MARKER = "/glint-clone-marker";

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

interface VerifyJson {
  ok: boolean;
  checks: { field: string; expected: string; seen: string | null; status: string }[];
}

/** `glint verify VM --json` of a stopped VM (the disk read offline): exit code and the check of each field. */
async function verify(
  vm: string,
): Promise<{ code: number; seen: Map<string, VerifyJson["checks"][0]> }> {
  const r = await glint("verify", vm, "--json");
  const [report] = JSON.parse(r.stdout) as VerifyJson[];
  return { code: r.code ?? -1, seen: new Map((report?.checks ?? []).map((c) => [c.field, c])) };
}

const rootPart = () => {
  const p = img.partitions.find((q) => q.role === "root");
  if (!p) throw new Error("the reference image has no root partition");
  return p;
};

/** The root filesystem of VM `vm`'s overlay (read through its base), as an ext4 image file. */
async function rootFs(vm: string, work: string): Promise<{ raw: string; part: string }> {
  await fs.mkdir(work, { recursive: true });
  const raw = path.join(work, "disk.raw");
  await exec("qemu-img", ["convert", "-O", "raw", path.join(home, vm, "overlay.qcow2"), raw]);
  return { raw, part: await extract(raw, rootPart(), work) };
}

/** Write `text` to MARKER in the root filesystem of VM `vm`'s overlay (offline, with debugfs). */
async function writeMarker(vm: string, text: string): Promise<void> {
  const work = path.join(dir, `marker-${vm}`);
  const { raw, part } = await rootFs(vm, work);
  const local = path.join(work, "marker.txt");
  await fs.writeFile(local, text);
  await exec("debugfs", ["-w", "-R", `write ${local} ${MARKER}`, part]);
  const seek = `seek=${rootPart().start / MiB}`;
  await exec("dd", [`if=${part}`, `of=${raw}`, "bs=1M", seek, "conv=notrunc", "status=none"]);
  // The overlay again, on the same base, holding what differs from it.
  const vmDir = path.join(home, vm);
  const next = path.join(work, "overlay.qcow2");
  const vmBase = path.join(vmDir, "base.qcow2");
  await exec("qemu-img", ["convert", "-O", "qcow2", "-B", vmBase, "-F", "qcow2", raw, next]);
  await exec("qemu-img", ["rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", next]);
  await fs.copyFile(next, path.join(vmDir, "overlay.qcow2"));
  await fs.rm(work, { recursive: true, force: true });
}

async function readMarker(vm: string): Promise<string> {
  const work = path.join(dir, `read-${vm}`);
  const { part } = await rootFs(vm, work);
  try {
    return await debugfsCat(part, MARKER);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
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

/**
 * Expect no file of VM `clone` to contain any identifier value of `original`.
 * With `readDisk`, the overlay (a real filesystem) is checked file by file, as
 * the guest sees it: sysprep replaces files, and the blocks the filesystem
 * freed are not scrubbed, so the original's old bytes may stay in them.
 */
async function expectNothingShared(
  clone: string,
  original: SystemIdentifiers,
  { readDisk = false } = {},
): Promise<void> {
  const values = valuesOf(original);
  const overlayFile = path.join(home, clone, "overlay.qcow2");
  const contents: [string, Buffer][] = [];
  for (const file of await files(path.join(home, clone))) {
    if (readDisk && file === overlayFile) continue;
    contents.push([path.relative(home, file), await fs.readFile(file)]);
  }
  if (readDisk) {
    const work = path.join(dir, `files-${clone}`);
    await fs.mkdir(work, { recursive: true });
    const raw = path.join(work, "disk.raw");
    await exec("qemu-img", ["convert", "-O", "raw", overlayFile, raw]);
    const inDisk = await allFiles(raw, img, work);
    expect(inDisk.size).toBeGreaterThan(15);
    for (const [name, text] of inDisk)
      contents.push([`${clone}'s disk ${name}`, Buffer.from(text, "latin1")]);
    await fs.rm(work, { recursive: true, force: true });
  }
  for (const [name, data] of contents) {
    for (const v of values) {
      expect(data.includes(v), `${name} holds ${v}`).toBe(false);
      expect(data.includes(v.toUpperCase()), `${name} holds ${v}`).toBe(false);
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
  img = await diskImage({ table: "gpt" });
}, 180_000);

describe("restore --as-clone of a VM with an overlay", () => {
  it("with its own copy of the base: the restored overlay is the live disk, re-identified; a distinct identity and TPM", async () => {
    await g("create", "ov", "--base", img.qcow2, "--overlay", "--firmware", "uefi", "--tpm");
    await writeMarker("ov", "installed in the original\n");
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
    expect(await readMarker("ov")).toBe("installed in the original\n");
    await expectNothingShared("ov-clone", original, { readDisk: true });
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);

    // The clone's live disk is the restored overlay: the original's content is there...
    expect(await readMarker("ov-clone")).toBe("installed in the original\n");
    // ... and it carries the clone's identity, read offline from the disk.
    const seen = await verify("ov-clone");
    expect(seen.code).toBe(0);
    for (const [field, value, old] of [
      ["machine-id", clone.machine_id, original.machine_id],
      ["root fs uuid", clone.filesystem_uuid, original.filesystem_uuid],
      ["root partuuid", clone.partition_uuid, original.partition_uuid],
      ["disk guid", clone.disk_uuid, original.disk_uuid],
      ["hostname", "ov-clone", "ov"],
    ]) {
      expect(seen.seen.get(field ?? ""), field).toMatchObject({ status: "ok", seen: value });
      expect(value).not.toBe(old);
    }
    // The original's disk still carries the original's.
    const orig = await verify("ov");
    expect(orig.code).toBe(0);
    expect(orig.seen.get("machine-id")?.seen).toBe(original.machine_id);
    expect(orig.seen.get("root fs uuid")?.seen).toBe(original.filesystem_uuid);

    // The clone's overlay is backed by the clone's own base copy, not the original's.
    const cloneDir = path.join(home, "ov-clone");
    const overlay = await info(path.join(cloneDir, "overlay.qcow2"));
    expect(overlay["backing-filename"]).toBe("base.qcow2");
    expect(overlay["full-backing-filename"]).toBe(path.join(cloneDir, "base.qcow2"));
    expect((await fs.lstat(path.join(cloneDir, "base.qcow2"))).isFile()).toBe(true);
    // Nothing of the original's (its disk, UEFI variables, TPM state) is the clone's past.
    expect(await fs.readdir(path.join(cloneDir, "history")).catch(() => [])).toEqual([]);
  }, 180_000);

  it("sysprep fails on the restored disk: no clone is left, nothing changed", async () => {
    await g("create", "sf", "--base", img.qcow2, "--overlay", "--tpm");
    const archive = path.join(dir, "sf.glint.tar.gz");
    await g("backup", "sf", "-o", archive, "--with-disk");
    // A debugfs that reads, but fails every write.
    const bin = path.join(dir, "failing-bin");
    await fs.mkdir(bin, { recursive: true });
    const real = (await exec("sh", ["-c", "command -v debugfs"])).stdout.trim();
    await fs.writeFile(
      path.join(bin, "debugfs"),
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = -w ] && { echo 'debugfs: simulated write failure' >&2; exit 1; }; done\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const before = await tree();
    const r = await runCli(["restore", archive, "--as", "sf-clone", "--as-clone", "--home", home], {
      env: { PATH: `${bin}:${process.env.PATH ?? ""}` },
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain("simulated write failure");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(existsSync(path.join(home, "sf-clone"))).toBe(false);
    expect(await tree()).toEqual(before);
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
    // Without the failure, the same restore works.
    await g("restore", archive, "--as", "sf-clone", "--as-clone");
    expect((await verify("sf-clone")).code).toBe(0);
  }, 180_000);

  it("a VM made with --no-sysprep: the clone's disk is the restored one, left as it was", async () => {
    await g("create", "ns", "--base", img.qcow2, "--overlay", "--no-sysprep");
    await writeMarker("ns", "kept as is\n");
    const archive = path.join(dir, "ns.glint.tar.gz");
    await g("backup", "ns", "-o", archive, "--with-disk");
    await g("restore", archive, "--as", "ns-clone", "--as-clone");
    expect(await readMarker("ns-clone")).toBe("kept as is\n");
    const seen = await verify("ns-clone");
    expect(seen.seen.get("machine-id")).toMatchObject({
      status: "mismatch",
      seen: img.ids.machineId,
    });
    expect(seen.seen.get("root fs uuid")?.seen).toBe(img.ids.rootUuid);
    expect(await fs.readdir(path.join(home, "ns-clone", "history")).catch(() => [])).toEqual([]);
  }, 180_000);

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
