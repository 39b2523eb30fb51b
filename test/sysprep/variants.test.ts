/**
 * Layout variants: an XFS data partition, a LUKS partition listed in
 * crypttab, an MBR disk; and the refusals: blank disk, corrupt GPT, an ext4
 * root whose journal needs recovery or that claims more than its partition,
 * a symlink.
 */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import { sysprepImage } from "../../src/sysprep/index.js";
import { vfatIdFromUuid } from "../../src/sysprep/vfat.js";
import { diskImage } from "../support/disk-image.js";
import {
  allFiles,
  asRaw,
  blkid,
  debugfsCat,
  extract,
  fsckAll,
  overlay,
  run,
  sfdisk,
  sha256,
} from "../support/disk-read.js";
import { identityFromSeed } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
beforeAll(async () => {
  dir = await tempDir("glint-sysprep-variants-");
});
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function noOldValues(
  raw: string,
  img: Awaited<ReturnType<typeof diskImage>>,
  work: string,
): Promise<void> {
  for (const [file, text] of await allFiles(raw, img, work)) {
    for (const old of img.oldValues) {
      expect(text.toLowerCase().includes(old.toLowerCase()), `${file} still holds ${old}`).toBe(
        false,
      );
    }
  }
}

describe("variants", () => {
  it("XFS data partition: a fresh UUID, written by xfs_admin and into fstab", async () => {
    const img = await diskImage({ table: "gpt", extra: "xfs" });
    const work = await fs.mkdtemp(path.join(dir, "xfs-"));
    const ov = path.join(work, "vm.qcow2");
    await overlay(img.qcow2, ov);
    const report = await sysprepImage(ov, {
      vmName: "xfsvm",
      identifiers: identityFromSeed("xfs"),
    });
    const change = report.changes.find((c) => c.kind === "xfs-uuid");
    expect(change).toMatchObject({ old: img.ids.extraUuid, source: "fresh" });
    expect(report.freshValues["partition4.uuid"]).toBe(change?.new);
    const raw = await asRaw(ov, work);
    const p4 = img.partitions.find((p) => p.number === 4);
    if (!p4) throw new Error("no partition 4");
    const x = await blkid(await extract(raw, p4, work));
    expect(x.TYPE).toBe("xfs");
    expect(x.UUID).toBe(change?.new);
    await run("xfs_repair", ["-n", path.join(work, "part4.img")]);
    const root = img.partitions.find((p) => p.role === "root");
    if (!root) throw new Error("no root");
    expect(await debugfsCat(await extract(raw, root, work), "/etc/fstab")).toContain(
      `UUID=${change?.new} /srv xfs`,
    );
    await noOldValues(raw, img, work);
    await fsckAll(raw, img, work, "gpt");
  }, 120_000);

  it("LUKS partition: the header UUID changes (no key needed) and crypttab follows; the inside is untouched", async () => {
    const img = await diskImage({ table: "gpt", extra: "luks" });
    const work = await fs.mkdtemp(path.join(dir, "luks-"));
    const ov = path.join(work, "vm.qcow2");
    await overlay(img.qcow2, ov);
    const report = await sysprepImage(ov, {
      vmName: "luksvm",
      identifiers: identityFromSeed("luks"),
    });
    const change = report.changes.find((c) => c.kind === "luks-uuid");
    expect(change).toMatchObject({ old: img.ids.extraUuid, source: "fresh" });
    expect(
      report.skipped.some((s) => s.object.includes("partition 4") && /encrypted/.test(s.reason)),
    ).toBe(true);
    const raw = await asRaw(ov, work);
    const p4 = img.partitions.find((p) => p.number === 4);
    const root = img.partitions.find((p) => p.role === "root");
    if (!p4 || !root) throw new Error("layout");
    const luks = await extract(raw, p4, work);
    expect((await run("cryptsetup", ["luksUUID", luks])).stdout.trim()).toBe(change?.new);
    await run("cryptsetup", ["luksDump", luks]); // header (both copies, checksums) still valid
    expect(await debugfsCat(await extract(raw, root, work), "/etc/crypttab")).toBe(
      `data UUID=${change?.new} none luks\n`,
    );
    await noOldValues(raw, img, work);
  }, 120_000);

  it("MBR disk: the disk signature comes from disk_uuid, PARTUUID references follow, partition_uuid is reported skipped", async () => {
    const img = await diskImage({ table: "mbr" });
    const work = await fs.mkdtemp(path.join(dir, "mbr-"));
    const raw = path.join(work, "vm.raw");
    await run("cp", ["--sparse=always", img.raw, raw]);
    const id = identityFromSeed("mbr");
    const report = await sysprepImage(raw, { vmName: "mbrvm", identifiers: id });
    const sig = id.disk_uuid.slice(0, 8);
    expect(report.partitionTable).toBe("mbr");
    expect(report.changes.find((c) => c.kind === "mbr-disk-signature")).toMatchObject({
      old: img.ids.mbrSignature,
      new: sig,
    });
    expect(report.skipped.map((s) => s.object)).toContain("partition_uuid");
    const table = await sfdisk(raw);
    expect(table.partitiontable.id).toBe(`0x${sig}`);
    const root = img.partitions.find((p) => p.role === "root");
    const esp = img.partitions.find((p) => p.role === "esp");
    if (!root || !esp) throw new Error("layout");
    const rootImg = await extract(raw, root, work);
    expect((await blkid(rootImg)).UUID).toBe(id.filesystem_uuid);
    expect((await blkid(await extract(raw, esp, work))).UUID).toBe(vfatIdFromUuid(id.boot_uuid));
    expect(await debugfsCat(rootImg, "/etc/kernel/cmdline")).toContain(`root=PARTUUID=${sig}-03`);
    expect(await debugfsCat(rootImg, "/etc/fstab")).toContain(`PARTUUID=${sig}-02 none`);
    await noOldValues(raw, img, work);
    await fsckAll(raw, img, work, "mbr");
  }, 120_000);
});

describe("refusals", () => {
  it("a blank disk is skipped, naming what was found, and left as it was", async () => {
    const blank = path.join(dir, "blank.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", blank, "64M"]);
    const before = await sha256(blank);
    const report = await sysprepImage(blank, { vmName: "b", identifiers: identityFromSeed("b") });
    expect(report.status).toBe("skipped");
    expect(report.skipped[0]?.reason).toMatch(/blank disk/);
    expect(report.changes).toEqual([]);
    expect(await sha256(blank)).toBe(before);
  });

  it("a corrupt GPT is a clear error and the image is unchanged", async () => {
    const img = await diskImage({ table: "gpt" });
    const raw = path.join(dir, "corrupt.raw");
    await run("cp", ["--sparse=always", img.raw, raw]);
    const fh = await fs.open(raw, "r+");
    await fh.write(Buffer.from([0xff]), 0, 1, 512 + 60); // a byte of the disk GUID: the header CRC breaks
    await fh.close();
    const before = await sha256(raw);
    await expect(
      sysprepImage(raw, { vmName: "c", identifiers: identityFromSeed("c") }),
    ).rejects.toThrow(/GPT header CRC mismatch/);
    expect(await sha256(raw)).toBe(before);
    expect((await fs.readdir(dir)).filter((n) => n.includes(".sysprep-"))).toEqual([]);
  });

  it("an ext4 root whose journal needs recovery is refused, unchanged", async () => {
    const img = await diskImage({ table: "gpt" });
    const raw = path.join(dir, "dirty.raw");
    await run("cp", ["--sparse=always", img.raw, raw]);
    const root = img.partitions.find((p) => p.role === "root");
    if (!root) throw new Error("layout");
    // Set the needs_recovery incompat flag (0x4) in the superblock (at 1024 + 96).
    const fh = await fs.open(raw, "r+");
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, root.start + 1024 + 96);
    b.writeUInt32LE(b.readUInt32LE(0) | 0x4, 0);
    await fh.write(b, 0, 4, root.start + 1024 + 96);
    await fh.close();
    const before = await sha256(raw);
    await expect(
      sysprepImage(raw, { vmName: "d", identifiers: identityFromSeed("d") }),
    ).rejects.toThrow(/journal needs recovery/);
    expect(await sha256(raw)).toBe(before);
  });

  it("an ext4 root that claims more blocks than its partition holds is refused, unchanged", async () => {
    // Tools reach a partition by its offset in the disk: such a filesystem
    // could make them write past its partition.
    const img = await diskImage({ table: "gpt" });
    const raw = path.join(dir, "oversized.raw");
    await run("cp", ["--sparse=always", img.raw, raw]);
    const root = img.partitions.find((p) => p.role === "root");
    if (!root) throw new Error("layout");
    // s_blocks_count_lo at 1024 + 4: doubled.
    const fh = await fs.open(raw, "r+");
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, root.start + 1024 + 4);
    b.writeUInt32LE(b.readUInt32LE(0) * 2, 0);
    await fh.write(b, 0, 4, root.start + 1024 + 4);
    await fh.close();
    const before = await sha256(raw);
    await expect(
      sysprepImage(raw, { vmName: "o", identifiers: identityFromSeed("o") }),
    ).rejects.toThrow(/claims \d+ bytes, more than its partition's \d+/);
    expect(await sha256(raw)).toBe(before);
  });

  it("a qcow2 image that a running QEMU has open is refused, unchanged", async () => {
    const img = await diskImage({ table: "gpt" });
    const ov = path.join(dir, "in-use.qcow2");
    await overlay(img.qcow2, ov);
    const before = await sha256(ov);
    const pidfile = path.join(dir, "qemu.pid");
    const qemu = spawn(
      "qemu-system-x86_64",
      [
        "-accel",
        "tcg",
        "-S",
        "-display",
        "none",
        "-nodefaults",
        "-drive",
        `file=${ov},if=virtio,format=qcow2`,
        "-pidfile",
        pidfile,
      ],
      { stdio: "ignore" },
    );
    try {
      // Wait until QEMU holds the image's lock (qemu-img info then fails).
      for (let i = 0; i < 500; i++) {
        const locked = await run("qemu-img", ["info", ov]).then(
          () => false,
          () => true,
        );
        if (locked) break;
        await sleep(20);
      }
      const err = await sysprepImage(ov, { vmName: "f", identifiers: identityFromSeed("f") }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(GlintError);
      expect((err as GlintError).message).toMatch(/^.*in-use\.qcow2: .*lock.*in use/);
      expect((err as GlintError).code).toBe("busy");
    } finally {
      qemu.kill("SIGKILL");
    }
    expect(await sha256(ov)).toBe(before);
    expect((await fs.readdir(dir)).filter((n) => n.startsWith(".in-use"))).toEqual([]);
  });

  it("a symlink to an image is refused", async () => {
    const img = await diskImage({ table: "gpt" });
    const link = path.join(dir, "link.qcow2");
    await fs.symlink(img.qcow2, link);
    await expect(
      sysprepImage(link, { vmName: "e", identifiers: identityFromSeed("e") }),
    ).rejects.toThrow(/symlink/);
  });
});
