/** Read a disk image back with independent tools (blkid, sfdisk, debugfs, fsck) for the sysprep tests. */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import type { DiskImage, PartitionInfo } from "./disk-image.js";

export const run = promisify(execFile);

export async function sha256(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** A qcow2 overlay of `base` at `file`. */
export async function overlay(base: string, file: string): Promise<void> {
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, file]);
}

/** The image as a raw file (a copy for qcow2). */
export async function asRaw(image: string, dir: string): Promise<string> {
  const head = Buffer.alloc(4);
  const fh = await fs.open(image, "r");
  await fh.read(head, 0, 4, 0);
  await fh.close();
  if (head.toString("latin1") !== "QFI\xfb") return image;
  const out = path.join(dir, `${path.basename(image)}.raw`);
  await run("qemu-img", ["convert", "-O", "raw", image, out]);
  return out;
}

export async function extract(raw: string, p: PartitionInfo, dir: string): Promise<string> {
  const out = path.join(dir, `part${p.number}.img`);
  await run("dd", [
    `if=${raw}`,
    `of=${out}`,
    "bs=1M",
    `skip=${p.start / 1048576}`,
    `count=${p.size / 1048576}`,
    "conv=sparse",
    "status=none",
  ]);
  return out;
}

export async function blkid(file: string): Promise<Record<string, string>> {
  const { stdout } = await run("blkid", ["-p", "-o", "export", file]);
  return Object.fromEntries(
    stdout
      .trim()
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

export interface SfdiskDump {
  partitiontable: {
    label: string;
    id: string;
    partitions: { node: string; start: number; uuid?: string }[];
  };
}

export async function sfdisk(raw: string): Promise<SfdiskDump> {
  return JSON.parse((await run("sfdisk", ["--json", raw])).stdout) as SfdiskDump;
}

export async function debugfsCat(file: string, p: string): Promise<string> {
  return (await run("debugfs", ["-R", `cat "${p}"`, file])).stdout;
}

/** `ls -p` entries of a directory of an ext image: name → octal mode. */
export async function debugfsModes(file: string, dir: string): Promise<Map<string, string>> {
  const { stdout } = await run("debugfs", ["-R", `ls -p "${dir}"`, file]);
  const m = new Map<string, string>();
  for (const l of stdout.split("\n")) {
    const f = l.split("/");
    if (f.length === 8) m.set(f[5] ?? "", f[2] ?? "");
  }
  return m;
}

/** Every fsck check: e2fsck -fn on ext, fsck.vfat -n on vfat, sgdisk -v / sfdisk --verify on the table. */
export async function fsckAll(
  raw: string,
  img: DiskImage,
  dir: string,
  table: "gpt" | "mbr",
): Promise<void> {
  for (const p of img.partitions) {
    if (p.role === "root") await run("e2fsck", ["-fn", await extract(raw, p, dir)]);
    if (p.role === "esp") await run("fsck.vfat", ["-n", await extract(raw, p, dir)]);
  }
  if (table === "gpt") {
    const { stdout } = await run("sgdisk", ["-v", raw]);
    if (!/No problems found/.test(stdout)) throw new Error(`sgdisk -v: ${stdout}`);
  } else {
    await run("sfdisk", ["--verify", raw]);
  }
}

/** Every file of the root and ESP filesystems, as text, by path. */
export async function allFiles(
  raw: string,
  img: DiskImage,
  dir: string,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (base: string, prefix: string) => {
    for (const e of await fs.readdir(base, { withFileTypes: true, recursive: true })) {
      if (!e.isFile()) continue;
      const full = path.join(e.parentPath, e.name);
      out.set(`${prefix}${path.relative(base, full)}`, await fs.readFile(full, "latin1"));
    }
  };
  for (const p of img.partitions) {
    const dest = path.join(dir, `files${p.number}`);
    await fs.mkdir(dest, { recursive: true });
    if (p.role === "root") {
      await run("debugfs", ["-R", `rdump / ${dest}`, await extract(raw, p, dir)]);
      await walk(dest, "root:/");
    } else if (p.role === "esp") {
      await run("mcopy", ["-s", "-n", "-i", await extract(raw, p, dir), "::/", dest], {
        env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
      });
      await walk(dest, "esp:/");
    }
  }
  return out;
}
