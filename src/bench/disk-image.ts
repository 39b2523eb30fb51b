/**
 * A realistic Debian-like disk image for the sysprep bench and tests, built
 * without mounts or loop devices: each filesystem is made in its own file
 * (mkfs.ext4 -d, mkfs.vfat + mtools, mkswap, mkfs.xfs, cryptsetup) and copied
 * into a sparse disk partitioned with sgdisk (GPT) or sfdisk (MBR), then
 * converted to qcow2. Built once per set of inputs and cached under
 * `${XDG_CACHE_HOME:-~/.cache}/glint-test/`.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface DiskImageOptions {
  readonly table: "gpt" | "mbr";
  /** An extra partition: xfs mounted at /srv, or LUKS listed in crypttab. */
  readonly extra?: "xfs" | "luks";
}

/** The identifiers the base image was built with. */
export interface BaseIds {
  readonly diskGuid: string;
  readonly mbrSignature: string;
  readonly rootPartuuid: string;
  readonly espPartuuid: string;
  readonly swapPartuuid: string;
  readonly extraPartuuid: string;
  readonly rootUuid: string;
  readonly swapUuid: string;
  readonly espId: string;
  readonly extraUuid: string;
  readonly machineId: string;
  readonly hostname: string;
}

export interface PartitionInfo {
  readonly number: number;
  readonly start: number;
  readonly size: number;
  readonly role: "esp" | "swap" | "root" | "extra";
}

export interface DiskImage {
  readonly raw: string;
  readonly qcow2: string;
  readonly ids: BaseIds;
  readonly partitions: readonly PartitionInfo[];
  /** Every old identifier string that must not survive sysprep. */
  readonly oldValues: readonly string[];
}

const BUILDER_VERSION = "sysprep-image-4";

export const BASE_IDS: BaseIds = {
  diskGuid: "0b0b0b0b-1111-4222-8333-444444444444",
  mbrSignature: "0b0b0b0b",
  rootPartuuid: "3a3a3a3a-1111-4222-8333-444444444444",
  espPartuuid: "1e1e1e1e-1111-4222-8333-444444444444",
  swapPartuuid: "2f2f2f2f-1111-4222-8333-444444444444",
  extraPartuuid: "4c4c4c4c-1111-4222-8333-444444444444",
  rootUuid: "5d5d5d5d-1111-4222-8333-444444444444",
  swapUuid: "6e6e6e6e-1111-4222-8333-444444444444",
  espId: "7A7A-1234",
  extraUuid: "8b8b8b8b-1111-4222-8333-444444444444",
  machineId: "9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c",
  hostname: "basehost",
};

const MiB = 1024 * 1024;

export function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "glint-test");
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

async function put(
  root: string,
  rel: string,
  content: string | Buffer,
  mode = 0o644,
): Promise<void> {
  const file = path.join(root, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
  await fs.chmod(file, mode);
}

function mbrPartuuid(n: number): string {
  return `${BASE_IDS.mbrSignature}-0${n}`;
}

/** The root filesystem's tree, referring to the other partitions. */
async function makeRootTree(dir: string, o: DiskImageOptions): Promise<void> {
  const ids = BASE_IDS;
  const gpt = o.table === "gpt";
  const rootPu = gpt ? ids.rootPartuuid : mbrPartuuid(3);
  const swapPu = gpt ? ids.swapPartuuid : mbrPartuuid(2);
  const fstab = [
    "# /etc/fstab: static file system information.",
    `UUID=${ids.rootUuid} /               ext4    errors=remount-ro 0       1`,
    `UUID=${ids.espId}  /boot/efi       vfat    umask=0077      0       1`,
    `PARTUUID=${swapPu} none            swap    sw              0       0`,
    ...(o.extra === "xfs" ? [`UUID=${ids.extraUuid} /srv xfs defaults 0 2`] : []),
    ...(o.extra === "luks" ? ["/dev/mapper/data /data ext4 defaults 0 2"] : []),
    "",
  ].join("\n");
  await put(dir, "etc/fstab", fstab);
  if (o.extra === "luks") await put(dir, "etc/crypttab", `data UUID=${ids.extraUuid} none luks\n`);
  await put(
    dir,
    "boot/grub/grub.cfg",
    [
      "insmod part_gpt",
      `search --no-floppy --fs-uuid --set=root ${ids.rootUuid}`,
      "menuentry 'Debian GNU/Linux' {",
      `\tsearch --no-floppy --fs-uuid --set=root ${ids.rootUuid}`,
      `\tlinux /boot/vmlinuz-6.1.0-amd64 root=UUID=${ids.rootUuid} ro resume=UUID=${ids.swapUuid} quiet`,
      "\tinitrd /boot/initrd.img-6.1.0-amd64",
      "}",
      "",
    ].join("\n"),
  );
  await put(dir, "boot/initrd.img-6.1.0-amd64", "not a real initramfs\n");
  await put(
    dir,
    "etc/default/grub",
    `GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="resume=UUID=${ids.swapUuid}"\n`,
  );
  await put(dir, "etc/initramfs-tools/conf.d/resume", `RESUME=UUID=${ids.swapUuid}\n`);
  await put(dir, "etc/kernel/cmdline", `root=PARTUUID=${rootPu} ro quiet\n`);
  await put(
    dir,
    "boot/loader/entries/debian.conf",
    `title Debian\nlinux /vmlinuz\noptions root=PARTUUID=${rootPu} ro\n`,
  );
  // What libguestfs inspection (virt-sysprep) needs to see an operating system.
  await put(
    dir,
    "etc/os-release",
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
  );
  await put(dir, "etc/debian_version", "12.8\n");
  await fs.mkdir(path.join(dir, "usr/bin"), { recursive: true });
  await fs.copyFile("/usr/bin/ls", path.join(dir, "usr/bin/ls"));
  await fs.symlink("usr/bin", path.join(dir, "bin"));
  await put(dir, "etc/machine-id", `${ids.machineId}\n`, 0o444);
  await put(dir, "var/lib/dbus/machine-id", `${ids.machineId}\n`);
  await put(dir, "etc/hostname", `${ids.hostname}\n`);
  await put(
    dir,
    "etc/hosts",
    `127.0.0.1\tlocalhost\n127.0.1.1\t${ids.hostname}\n\n::1\tlocalhost ip6-localhost\n`,
  );
  await put(
    dir,
    "var/lib/dhcp/dhclient.enp1s0.leases",
    'lease {\n  interface "enp1s0";\n  fixed-address 10.0.2.15;\n}\n',
  );
  await put(
    dir,
    "etc/udev/rules.d/70-persistent-net.rules",
    'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n',
  );
  await put(
    dir,
    "etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
    "[connection]\nid=Wired connection 1\ntype=ethernet\n\n[ethernet]\nmac-address=52:54:00:12:34:56\n",
    0o600,
  );
  await put(
    dir,
    "etc/network/interfaces",
    "auto eth0\niface eth0 inet dhcp\n    hwaddress ether 52:54:00:12:34:56\n",
  );
  await put(dir, "var/lib/cloud/instances/iid-base/sem/config_ssh", "x\n");
  await put(dir, "var/lib/cloud/instances/iid-base/user-data.txt", "#cloud-config\n");
  await fs.symlink("/var/lib/cloud/instances/iid-base", path.join(dir, "var/lib/cloud/instance"));
  await put(dir, "var/lib/cloud/data/instance-id", "iid-base\n");
  await put(dir, "var/lib/systemd/random-seed", Buffer.alloc(512, 7), 0o600);
  await fs.mkdir(path.join(dir, "etc/ssh"), { recursive: true });
  for (const t of ["rsa", "ecdsa", "ed25519"]) {
    const f = path.join(dir, `etc/ssh/ssh_host_${t}_key`);
    await run("ssh-keygen", ["-q", "-t", t, "-N", "", "-C", `root@${ids.hostname}`, "-f", f]);
  }
}

async function dd(src: string, disk: string, offset: number): Promise<void> {
  await run("dd", [
    `if=${src}`,
    `of=${disk}`,
    "bs=1M",
    `seek=${offset / MiB}`,
    "conv=notrunc,sparse",
    "status=none",
  ]);
}

async function build(dir: string, o: DiskImageOptions): Promise<DiskImage> {
  const ids = BASE_IDS;
  const tree = path.join(dir, "tree");
  await makeRootTree(tree, o);
  const esp = { number: 1, start: 1 * MiB, size: 33 * MiB, role: "esp" as const };
  const swap = { number: 2, start: 34 * MiB, size: 16 * MiB, role: "swap" as const };
  const root = { number: 3, start: 50 * MiB, size: 80 * MiB, role: "root" as const };
  const extra = { number: 4, start: 130 * MiB, size: 300 * MiB, role: "extra" as const };
  const parts = o.extra ? [esp, swap, root, extra] : [esp, swap, root];
  const diskSize = (o.extra ? 431 : 131) * MiB + MiB;
  const f = (n: string) => path.join(dir, n);
  await run("mkfs.vfat", [
    "-F",
    "32",
    "-i",
    ids.espId.replace("-", ""),
    "-C",
    f("esp.img"),
    String(esp.size / 1024),
  ]);
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
  await run("mmd", ["-i", f("esp.img"), "::/EFI", "::/EFI/debian"], { env });
  await fs.writeFile(
    f("grub-esp.cfg"),
    `search.fs_uuid ${ids.rootUuid} root hd0,gpt3\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n`,
  );
  await run("mcopy", ["-i", f("esp.img"), f("grub-esp.cfg"), "::/EFI/debian/grub.cfg"], { env });
  await run("truncate", ["-s", String(swap.size), f("swap.img")]);
  await run("mkswap", ["-U", ids.swapUuid, f("swap.img")]);
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-O",
    "metadata_csum,^metadata_csum_seed",
    "-U",
    ids.rootUuid,
    "-d",
    tree,
    f("root.img"),
    `${root.size / 1024}k`,
  ]);
  if (o.extra === "xfs") {
    await run("truncate", ["-s", String(extra.size), f("extra.img")]);
    await run("mkfs.xfs", ["-q", "-m", `uuid=${ids.extraUuid}`, f("extra.img")]);
  } else if (o.extra === "luks") {
    await run("truncate", ["-s", String(extra.size), f("extra.img")]);
    await fs.writeFile(f("luks.key"), "glint test key, not a secret\n");
    await run("cryptsetup", [
      "luksFormat",
      "-q",
      "--type",
      "luks2",
      "--pbkdf",
      "pbkdf2",
      "--pbkdf-force-iterations",
      "1000",
      "--uuid",
      ids.extraUuid,
      "--key-file",
      f("luks.key"),
      f("extra.img"),
    ]);
  }
  const raw = f("base.raw");
  await run("truncate", ["-s", String(diskSize), raw]);
  if (o.table === "gpt") {
    const args = ["-o", "-U", ids.diskGuid];
    const type = { esp: "ef00", swap: "8200", root: "8304", extra: "8300" };
    const pu = {
      esp: ids.espPartuuid,
      swap: ids.swapPartuuid,
      root: ids.rootPartuuid,
      extra: ids.extraPartuuid,
    };
    for (const p of parts) {
      args.push(
        "-n",
        `${p.number}:${p.start / 512}:${(p.start + p.size) / 512 - 1}`,
        "-t",
        `${p.number}:${type[p.role]}`,
        "-u",
        `${p.number}:${pu[p.role]}`,
      );
    }
    await run("sgdisk", [...args, raw]);
  } else {
    const type = { esp: "ef", swap: "82", root: "83", extra: "83" };
    const script = [
      "label: dos",
      `label-id: 0x${ids.mbrSignature}`,
      ...parts.map((p) => `start=${p.start / 512}, size=${p.size / 512}, type=${type[p.role]}`),
      "",
    ].join("\n");
    await fs.writeFile(f("sfdisk.txt"), script);
    await run("sh", ["-c", 'sfdisk --quiet "$1" < "$2"', "sh", raw, f("sfdisk.txt")]);
  }
  await dd(f("esp.img"), raw, esp.start);
  await dd(f("swap.img"), raw, swap.start);
  await dd(f("root.img"), raw, root.start);
  if (o.extra) await dd(f("extra.img"), raw, extra.start);
  for (const n of ["esp.img", "swap.img", "root.img", "extra.img", "grub-esp.cfg", "sfdisk.txt"])
    await fs.rm(f(n), { force: true });
  await fs.rm(tree, { recursive: true, force: true });
  await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, f("base.qcow2")]);
  const oldValues = [
    ids.rootUuid,
    ids.swapUuid,
    ids.espId,
    ids.machineId,
    ...(o.table === "gpt"
      ? [ids.diskGuid, ids.rootPartuuid, ids.espPartuuid, ids.swapPartuuid]
      : [mbrPartuuid(2), mbrPartuuid(3)]),
    ...(o.extra ? [ids.extraUuid, ...(o.table === "gpt" ? [ids.extraPartuuid] : [])] : []),
  ];
  return { raw, qcow2: f("base.qcow2"), ids, partitions: parts, oldValues };
}

/** The cached image for `o`, building it first if needed. */
export async function diskImage(o: DiskImageOptions): Promise<DiskImage> {
  const key = createHash("sha256")
    .update(JSON.stringify({ BUILDER_VERSION, ...o }))
    .digest("hex")
    .slice(0, 16);
  const dir = path.join(cacheRoot(), `sysprep-${o.table}${o.extra ? `-${o.extra}` : ""}-${key}`);
  const meta = path.join(dir, "image.json");
  if (await exists(meta)) return JSON.parse(await fs.readFile(meta, "utf8")) as DiskImage;
  await fs.mkdir(cacheRoot(), { recursive: true });
  const tmp = await fs.mkdtemp(`${dir}.tmp-`);
  try {
    const img = await build(tmp, o);
    const final: DiskImage = {
      ...img,
      raw: path.join(dir, "base.raw"),
      qcow2: path.join(dir, "base.qcow2"),
    };
    await fs.writeFile(path.join(tmp, "image.json"), JSON.stringify(final, null, 2));
    // Images of older builder versions of this variant are no longer used.
    const variant = path.basename(dir).replace(/-[0-9a-f]{16}$/, "-");
    for (const name of await fs.readdir(cacheRoot())) {
      if (name.startsWith(variant) && /^[0-9a-f]{16}$/.test(name.slice(variant.length))) {
        await fs.rm(path.join(cacheRoot(), name), { recursive: true, force: true });
      }
    }
    await fs.rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
      await fs.rm(tmp, { recursive: true, force: true }); // built concurrently by someone else
    });
    return final;
  } catch (error) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw error;
  }
}
