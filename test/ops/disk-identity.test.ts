/**
 * The identity is written into the VM's own disk automatically: `glint
 * create --base B --overlay` identifies the new overlay, `regen disk` and
 * `nuke` the fresh one, `regen base` the current one; a VM with its own base
 * copy gets it in that copy; `--no-sysprep` leaves the disk alone; a linked
 * base is never written; a blank disk is skipped without failing.
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { inspectImage } from "../../src/sysprep/index.js";
import { runCli } from "../support/cli.js";
import { type DiskImage, diskImage } from "../support/disk-image.js";
import { asRaw, debugfsCat, debugfsModes, extract } from "../support/disk-read.js";
import { run } from "../support/exec.js";
import { tempDir } from "../support/tmp.js";

let img: DiskImage;
let home: string;
let baseSum: string;

async function sha256(file: string): Promise<string> {
  return createHash("sha256")
    .update(await fs.readFile(file))
    .digest("hex");
}

beforeAll(async () => {
  img = await diskImage({ table: "gpt" });
  home = await tempDir("glint-disk-identity-");
  baseSum = await sha256(img.qcow2);
}, 180_000);

async function glint(...args: string[]): Promise<string> {
  const r = await runCli([...args, "--home", home]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

async function ids(vm: string): Promise<Record<string, string>> {
  return JSON.parse(await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"));
}

/** What the disk holds, against the VM's identifiers.json. */
async function expectApplied(vm: string, disk = "overlay.qcow2"): Promise<void> {
  const id = await ids(vm);
  const seen = await inspectImage(path.join(home, vm, disk));
  expect(seen.diskGuid).toBe(id.disk_uuid);
  const root = seen.partitions.find((p) => p.number === seen.rootPartition);
  expect(root?.partuuid).toBe(id.partition_uuid);
  expect(root?.uuid).toBe(id.filesystem_uuid);
  expect(seen.partitions.some((p) => p.uuid === id.swap_uuid)).toBe(true);
  expect(seen.machineId).toBe(id.machine_id);
  expect(seen.hostname).toBe(vm);
  // The first-boot script's record: this identity is applied.
  const work = await tempDir("glint-disk-read-");
  const rootPart = img.partitions.find((x) => x.role === "root");
  if (!rootPart) throw new Error("the reference image has no root partition");
  const rootImg = await extract(await asRaw(path.join(home, vm, disk), work), rootPart, work);
  const record = await debugfsCat(rootImg, "/etc/glint/applied");
  expect(record).toContain(`\nvm_uuid=${id.vm_uuid}\n`);
  expect(record).toContain(`\ngeneration=${id.generation}\n`);
  expect(record).toContain(`\nmachine_id=${id.machine_id}\n`);
  expect(record).toContain("\ndisk_ids=applied\n");
  expect((await debugfsModes(rootImg, "/etc")).get("glint")).toBe("040755");
  expect((await debugfsModes(rootImg, "/etc/glint")).get("applied")).toBe("100644");
  // debugfs's mkdir and write leave the filesystem clean.
  const fsck = await run("e2fsck", ["-fn", rootImg]);
  expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
  await fs.rm(work, { recursive: true, force: true });
}

describe("automatic offline re-identification", () => {
  it("create --overlay identifies each clone's overlay; the base never changes", async () => {
    await glint("create", "a", "--base", img.qcow2, "--overlay", "--link-base");
    await glint("create", "b", "--base", img.qcow2, "--overlay", "--link-base");
    await expectApplied("a");
    await expectApplied("b");
    const [ia, ib] = [
      await inspectImage(path.join(home, "a", "overlay.qcow2")),
      await inspectImage(path.join(home, "b", "overlay.qcow2")),
    ];
    expect(ia.machineId).not.toBe(ib.machineId);
    expect(ia.sshHostKeys.ed25519).toBeDefined();
    expect(ia.sshHostKeys.ed25519).not.toBe(ib.sshHostKeys.ed25519);
    expect(await sha256(img.qcow2)).toBe(baseSum);
    // The fresh partition values are kept for the next run.
    const config = JSON.parse(await fs.readFile(path.join(home, "a", "config.json"), "utf8"));
    expect(Object.keys(config.sysprep_values).length).toBeGreaterThan(0);
  }, 180_000);

  it("regen disk, regen base and nuke write the new identity into the disk", async () => {
    await glint("regen", "disk", "a", "--yes");
    await expectApplied("a");
    await glint("regen", "base", "a", "--yes");
    await expectApplied("a");
    await glint("nuke", "a", "--yes");
    await expectApplied("a");
    expect(await sha256(img.qcow2)).toBe(baseSum);
  }, 240_000);

  it("a VM with its own base copy gets the identity in that copy", async () => {
    await glint("create", "c", "--base", img.qcow2);
    await expectApplied("c", "base.qcow2");
    expect(await sha256(img.qcow2)).toBe(baseSum);
  }, 180_000);

  it("--no-sysprep leaves the disk as the base had it, also on regeneration", async () => {
    await glint("create", "d", "--base", img.qcow2, "--overlay", "--no-sysprep");
    const seen = await inspectImage(path.join(home, "d", "overlay.qcow2"));
    expect(seen.machineId).toBe(img.ids.machineId);
    await glint("regen", "base", "d", "--yes");
    expect((await inspectImage(path.join(home, "d", "overlay.qcow2"))).machineId).toBe(
      img.ids.machineId,
    );
  }, 180_000);

  it("a blank disk is skipped, and create succeeds", async () => {
    const out = await runCli(["create", "e", "--disk-size", "16M", "--home", home]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toMatch(/sysprep skipped/);
  }, 120_000);
});
