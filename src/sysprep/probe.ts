/**
 * Recognise the filesystem (or volume) at the start of a partition, in
 * process, from its first 68 KiB: ext2/3/4, vfat, swap, xfs, LUKS, and the
 * ones Glint leaves alone (LVM, btrfs).
 */
import { promises as fs } from "node:fs";

export type FsInfo =
  | {
      readonly type: "ext";
      readonly uuid: string;
      readonly label: string;
      /** ext4 metadata_csum / metadata_csum_seed features. */
      readonly metadataCsum: boolean;
      readonly csumSeed: boolean;
      /** Size in bytes the superblock claims. */
      readonly bytes: number;
      /** Why the filesystem must not be touched (journal to replay, errors), if so. */
      readonly damage?: string;
    }
  | {
      readonly type: "vfat";
      readonly id: string;
      readonly label: string;
      readonly fat32: boolean;
      /** Size in bytes the boot sector claims. */
      readonly bytes: number;
    }
  | { readonly type: "swap"; readonly uuid: string; readonly label: string }
  | { readonly type: "xfs"; readonly uuid: string; readonly label: string }
  | { readonly type: "luks"; readonly uuid: string; readonly version: number }
  | { readonly type: "lvm" }
  | { readonly type: "btrfs"; readonly uuid: string }
  | { readonly type: "empty" }
  | { readonly type: "unknown" };

export const PROBE_BYTES = 0x11000;

/** A UUID from 16 bytes in on-disk (big-endian) order. */
export function uuidFromBytes(b: Uint8Array): string {
  const h = Buffer.from(b).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: ${uuid}`);
  return Buffer.from(hex, "hex");
}

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const end = s.indexOf(0);
  return s
    .subarray(0, end < 0 ? s.length : end)
    .toString("latin1")
    .trimEnd();
}

/** The vfat volume ID as blkid prints it: `ABCD-1234`. */
export function formatVfatId(n: number): string {
  const h = n.toString(16).toUpperCase().padStart(8, "0");
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

/** Recognise the content of a partition from its first PROBE_BYTES bytes. */
export function probeBytes(b: Buffer): FsInfo {
  if (
    b.length >= 512 &&
    b.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]))
  ) {
    return { type: "luks", version: b.readUInt16BE(6), uuid: cstr(b, 168, 40).toLowerCase() };
  }
  if (b.length >= 512 && b.toString("latin1", 0, 4) === "XFSB") {
    return { type: "xfs", uuid: uuidFromBytes(b.subarray(32, 48)), label: cstr(b, 108, 12) };
  }
  if (b.length >= 0x10048 && b.toString("latin1", 0x10040, 0x10048) === "_BHRfS_M") {
    return { type: "btrfs", uuid: uuidFromBytes(b.subarray(0x10020, 0x10030)) };
  }
  if (b.length >= 2048 && b.readUInt16LE(1024 + 56) === 0xef53) return probeExt(b.subarray(1024));
  for (const page of [4096, 8192, 16384, 65536]) {
    if (b.length >= page && b.toString("latin1", page - 10, page) === "SWAPSPACE2") {
      return {
        type: "swap",
        uuid: uuidFromBytes(b.subarray(1036, 1052)),
        label: cstr(b, 1052, 16),
      };
    }
  }
  for (let sector = 0; sector < 4; sector++) {
    const o = sector * 512;
    if (b.length >= o + 32 && b.toString("latin1", o, o + 8) === "LABELONE") return { type: "lvm" };
  }
  const vfat = probeVfat(b);
  if (vfat) return vfat;
  return b.subarray(0, 0x10000).every((x) => x === 0) ? { type: "empty" } : { type: "unknown" };
}

function probeExt(sb: Buffer): FsInfo {
  const state = sb.readUInt16LE(58);
  const incompat = sb.readUInt32LE(96);
  const roCompat = sb.readUInt32LE(100);
  let damage: string | undefined;
  if (incompat & 0x4) damage = "its journal needs recovery (it was not cleanly unmounted)";
  else if (state & 0x2) damage = "it has recorded errors";
  else if (!(state & 0x1)) damage = "it is not marked clean";
  const blocks = sb.readUInt32LE(4) + (incompat & 0x80 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
  return {
    type: "ext",
    bytes: blocks * 2 ** (10 + Math.min(sb.readUInt32LE(24), 22)),
    uuid: uuidFromBytes(sb.subarray(104, 120)),
    label: cstr(sb, 120, 16),
    metadataCsum: (roCompat & 0x400) !== 0,
    csumSeed: (incompat & 0x2000) !== 0,
    ...(damage === undefined ? {} : { damage }),
  };
}

/** Boot-sector facts of a FAT volume, or undefined if `b` does not start with one. */
export function vfatLayout(
  b: Buffer,
): { fat32: boolean; idOffset: number; backupSector: number; bytesPerSector: number } | undefined {
  if (b.length < 512 || b.readUInt16LE(510) !== 0xaa55) return undefined;
  const bps = b.readUInt16LE(11);
  if (![512, 1024, 2048, 4096].includes(bps)) return undefined;
  const fatSz16 = b.readUInt16LE(22);
  const fat32 = fatSz16 === 0;
  const sigOffset = fat32 ? 66 : 38;
  const typeText = b.toString("latin1", fat32 ? 82 : 54, fat32 ? 90 : 62);
  if (b[sigOffset] !== 0x29 || !typeText.startsWith("FAT")) return undefined;
  return {
    fat32,
    idOffset: sigOffset + 1,
    backupSector: fat32 ? b.readUInt16LE(50) : 0,
    bytesPerSector: bps,
  };
}

function probeVfat(b: Buffer): FsInfo | undefined {
  const l = vfatLayout(b);
  if (!l) return undefined;
  const sectors = b.readUInt16LE(19) || b.readUInt32LE(32);
  return {
    type: "vfat",
    bytes: sectors * l.bytesPerSector,
    fat32: l.fat32,
    id: formatVfatId(b.readUInt32LE(l.idOffset)),
    label: cstr(b, l.idOffset + 4, 11),
  };
}

/** Read `length` bytes at `offset` of `file` (short at end of file). */
export async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await fs.open(file, "r");
  try {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  } finally {
    await fh.close();
  }
}

/**
 * Write `data` at `offset` of `file`. Not flushed: sysprep works on a temp
 * copy and flushes it once, before renaming it into place (commitTempCopy).
 */
export async function writeAt(file: string, offset: number, data: Uint8Array): Promise<void> {
  const fh = await fs.open(file, "r+");
  try {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  } finally {
    await fh.close();
  }
}

/** Probe the partition at byte `start` of `disk`. */
export async function probeAt(disk: string, start: number): Promise<FsInfo> {
  return probeBytes(await readAt(disk, start, PROBE_BYTES));
}

/** "ext4"-style name of a probed filesystem, for messages. */
export function fsName(f: FsInfo): string {
  return f.type === "ext" ? "ext" : f.type;
}
