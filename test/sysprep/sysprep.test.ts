/**
 * Offline re-identification on a realistic GPT image (ESP + swap + ext4 root
 * with metadata_csum): every mapped value read back with blkid / sfdisk /
 * debugfs, no old identifier left in any file, fsck clean, base unchanged.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectImage, type SysprepReport, sysprepImage } from "../../src/sysprep/index.js";
import { vfatIdFromUuid } from "../../src/sysprep/vfat.js";
import { type DiskImage, diskImage } from "../support/disk-image.js";
import {
  allFiles,
  asRaw,
  blkid,
  debugfsCat,
  debugfsModes,
  extract,
  fsckAll,
  overlay,
  run,
  sfdisk,
  sha256,
} from "../support/disk-read.js";
import { identityFromSeed } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";

let img: DiskImage;
let dir: string;
let baseSum: string;

beforeAll(async () => {
  img = await diskImage({ table: "gpt" });
  dir = await tempDir("glint-sysprep-test-");
  baseSum = await sha256(img.qcow2);
}, 120_000);
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const part = (role: string) => {
  const p = img.partitions.find((x) => x.role === role);
  if (!p) throw new Error(`no ${role}`);
  return p;
};

/** Check every mapped value of `image` against `id`; returns all values read. */
async function checkApplied(
  image: string,
  vm: string,
  seed: string,
  report: SysprepReport,
  work: string,
): Promise<string[]> {
  const id = identityFromSeed(seed);
  expect(report.status).toBe("applied");
  const raw = await asRaw(image, work);
  const table = await sfdisk(raw);
  expect(table.partitiontable.label).toBe("gpt");
  expect(table.partitiontable.id.toLowerCase()).toBe(id.disk_uuid);
  const rootPu = table.partitiontable.partitions[2]?.uuid?.toLowerCase();
  expect(rootPu).toBe(id.partition_uuid);
  const root = await blkid(await extract(raw, part("root"), work));
  expect(root.UUID).toBe(id.filesystem_uuid);
  expect(root.TYPE).toBe("ext4");
  const esp = await blkid(await extract(raw, part("esp"), work));
  expect(esp.UUID).toBe(vfatIdFromUuid(id.boot_uuid));
  const swap = await blkid(await extract(raw, part("swap"), work));
  expect(swap.UUID).toBe(id.swap_uuid);
  const rootImg = path.join(work, "part3.img");
  expect((await debugfsCat(rootImg, "/etc/machine-id")).trim()).toBe(id.machine_id);
  expect((await debugfsCat(rootImg, "/var/lib/dbus/machine-id")).trim()).toBe(id.machine_id);
  expect((await debugfsCat(rootImg, "/etc/hostname")).trim()).toBe(vm);
  expect(await debugfsCat(rootImg, "/etc/hosts")).toContain(`127.0.1.1\t${vm}\n`);
  const fstab = await debugfsCat(rootImg, "/etc/fstab");
  expect(fstab).toContain(`UUID=${id.filesystem_uuid} /`);
  expect(fstab).toContain(`UUID=${vfatIdFromUuid(id.boot_uuid)}  /boot/efi`);
  const swapPu = table.partitiontable.partitions[1]?.uuid?.toLowerCase();
  expect(fstab).toContain(`PARTUUID=${swapPu} none`);
  const grub = await debugfsCat(rootImg, "/boot/grub/grub.cfg");
  expect(grub).toContain(`root=UUID=${id.filesystem_uuid} ro resume=UUID=${id.swap_uuid}`);
  expect(await debugfsCat(rootImg, "/etc/kernel/cmdline")).toContain(
    `root=PARTUUID=${id.partition_uuid}`,
  );
  // SSH host keys: three new keys, same modes, private matches public.
  const modes = await debugfsModes(rootImg, "/etc/ssh");
  for (const t of ["rsa", "ecdsa", "ed25519"]) {
    expect(modes.get(`ssh_host_${t}_key`), t).toBe("100600");
    expect(modes.get(`ssh_host_${t}_key.pub`), t).toBe("100644");
    const key = path.join(work, `k-${t}`);
    await run("debugfs", ["-R", `dump /etc/ssh/ssh_host_${t}_key ${key}`, rootImg]);
    await fs.chmod(key, 0o600);
    const derived = (await run("ssh-keygen", ["-y", "-f", key])).stdout
      .trim()
      .split(" ")
      .slice(0, 2)
      .join(" ");
    const pub = (await debugfsCat(rootImg, `/etc/ssh/ssh_host_${t}_key.pub`))
      .trim()
      .split(" ")
      .slice(0, 2)
      .join(" ");
    expect(derived).toBe(pub);
  }
  expect((await debugfsModes(rootImg, "/etc")).get("machine-id")).toBe("100444");
  // Cleared state.
  const gone = async (dirPath: string, name: string) =>
    expect((await debugfsModes(rootImg, dirPath)).has(name), `${dirPath}/${name}`).toBe(false);
  await gone("/var/lib/dhcp", "dhclient.enp1s0.leases");
  await gone("/etc/udev/rules.d", "70-persistent-net.rules");
  await gone("/var/lib/cloud", "instance");
  expect([...(await debugfsModes(rootImg, "/var/lib/cloud/instances")).keys()].sort()).toEqual([
    ".",
    "..",
  ]);
  await gone("/var/lib/cloud/data", "instance-id");
  expect(
    await debugfsCat(
      rootImg,
      "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
    ),
  ).not.toContain("mac-address");
  expect(await debugfsCat(rootImg, "/etc/network/interfaces")).not.toContain("hwaddress");
  const seedDump = path.join(work, "seed");
  await run("debugfs", ["-R", `dump /var/lib/systemd/random-seed ${seedDump}`, rootImg]);
  const seedBytes = await fs.readFile(seedDump);
  expect(seedBytes.length).toBe(512);
  expect(seedBytes.equals(Buffer.alloc(512, 7))).toBe(false);
  // No old identifier anywhere, in any file of the root filesystem or the ESP.
  const files = await allFiles(raw, img, work);
  expect(files.size).toBeGreaterThan(15);
  for (const [file, text] of files) {
    for (const old of img.oldValues) {
      expect(text.toLowerCase().includes(old.toLowerCase()), `${file} still holds ${old}`).toBe(
        false,
      );
    }
  }
  const espCfg = files.get("esp:/EFI/debian/grub.cfg") ?? "";
  expect(espCfg).toContain(`search.fs_uuid ${id.filesystem_uuid} root`);
  await fsckAll(raw, img, work, "gpt");
  // The reader agrees.
  const seen = await inspectImage(image);
  expect(seen.diskGuid).toBe(id.disk_uuid);
  expect(seen.machineId).toBe(id.machine_id);
  expect(seen.hostname).toBe(vm);
  expect(Object.keys(seen.sshHostKeys).sort()).toEqual(["ecdsa", "ed25519", "rsa"]);
  for (const c of report.changes.filter((x) => x.kind === "ssh-host-key")) {
    expect(Object.values(seen.sshHostKeys)).toContain(c.new);
  }
  return [
    table.partitiontable.id,
    ...table.partitiontable.partitions.map((p) => p.uuid ?? ""),
    root.UUID ?? "",
    esp.UUID ?? "",
    swap.UUID ?? "",
    ...Object.values(seen.sshHostKeys),
    id.machine_id,
  ].map((v) => v.toLowerCase());
}

describe("sysprepImage on a qcow2 overlay", () => {
  it("applies two identities to two overlays: all values read back, nothing old left, nothing shared, base unchanged", async () => {
    const values: string[][] = [];
    for (const vm of ["alpha", "beta"]) {
      const work = path.join(dir, vm);
      await fs.mkdir(work);
      const ov = path.join(dir, `${vm}.qcow2`);
      await overlay(img.qcow2, ov);
      const report = await sysprepImage(ov, { vmName: vm, identifiers: identityFromSeed(vm) });
      expect(report.format).toBe("qcow2");
      expect(report.partitionTable).toBe("gpt");
      expect(Object.keys(report.freshValues).sort()).toEqual([
        "partition1.partuuid",
        "partition2.partuuid",
      ]);
      expect(report.files.map((f) => f.path)).toContain("/etc/fstab");
      values.push(await checkApplied(ov, vm, vm, report, work));
    }
    const shared = (values[0] ?? []).filter((v) => (values[1] ?? []).includes(v));
    expect(shared).toEqual([]);
    expect(await sha256(img.qcow2)).toBe(baseSum);
  }, 120_000);

  it("dry run reports the plan and changes nothing; a second run with previousMap keeps the fresh values", async () => {
    const ov = path.join(dir, "gamma.qcow2");
    await overlay(img.qcow2, ov);
    const before = await sha256(ov);
    const identifiers = identityFromSeed("gamma");
    const plan = await sysprepImage(ov, { vmName: "gamma", identifiers }, { dryRun: true });
    expect(plan.status).toBe("planned");
    expect(plan.changes.find((c) => c.kind === "gpt-disk-guid")).toMatchObject({
      old: img.ids.diskGuid,
      new: identifiers.disk_uuid,
    });
    expect(plan.changes.find((c) => c.kind === "ext-uuid")).toMatchObject({
      old: img.ids.rootUuid,
      new: identifiers.filesystem_uuid,
      source: "filesystem_uuid",
    });
    expect(plan.changes.find((c) => c.kind === "vfat-id")).toMatchObject({
      old: img.ids.espId,
      new: vfatIdFromUuid(identifiers.boot_uuid),
    });
    expect(plan.changes.find((c) => c.kind === "swap-uuid")).toMatchObject({
      old: img.ids.swapUuid,
      new: identifiers.swap_uuid,
    });
    expect(plan.notes.join(" ")).toContain("initrd.img-6.1.0-amd64");
    expect(await sha256(ov)).toBe(before);
    const first = await sysprepImage(ov, { vmName: "gamma", identifiers });
    const again = await sysprepImage(ov, {
      vmName: "gamma",
      identifiers,
      previousMap: first.freshValues,
    });
    expect(again.freshValues).toEqual(first.freshValues);
    expect(
      again.changes.filter((c) => !["ssh-host-key", "machine-id", "hostname"].includes(c.kind)),
    ).toEqual([]);
    expect(await sha256(img.qcow2)).toBe(baseSum);
  }, 60_000);
});

describe("sysprepImage on a raw copy", () => {
  it("applies the identity in place", async () => {
    const work = path.join(dir, "raw");
    await fs.mkdir(work);
    const raw = path.join(dir, "delta.raw");
    await run("cp", ["--sparse=always", img.raw, raw]);
    const report = await sysprepImage(raw, {
      vmName: "delta",
      identifiers: identityFromSeed("delta"),
    });
    expect(report.format).toBe("raw");
    await checkApplied(raw, "delta", "delta", report, work);
  }, 60_000);
});
