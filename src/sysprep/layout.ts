/**
 * The layout of a disk image seen as a raw file (a raw image itself, or a
 * qcow2 image through a FUSE export): its partition table (GPT or MBR), where
 * each partition starts, and what each holds. Tools reach a partition by its
 * offset in that one file: e2fsprogs as `disk?offset=N`, mtools as
 * `disk@@N`, in-process reads and writes at start + offset.
 */
import { GlintError } from "../errors.js";
import { readGpt } from "./gpt.js";
import { parseMbr } from "./mbr.js";
import { type FsInfo, probeAt, probeBytes, readAt } from "./probe.js";

export interface Part {
  readonly number: number;
  readonly start: number;
  readonly size: number;
  readonly partuuid: string;
  /** GPT partition type GUID, or undefined on MBR. */
  readonly typeGuid?: string;
  /** MBR partition type byte, or undefined on GPT. */
  readonly mbrType?: number;
  readonly name: string;
  /** The whole disk as a raw file; the partition starts at byte `start`. */
  readonly disk: string;
  readonly fs: FsInfo;
}

export interface DiskLayout {
  readonly table: "gpt" | "mbr" | "none";
  readonly diskGuid?: string;
  readonly mbrSignature?: string;
  readonly parts: readonly Part[];
  /** MBR extended partitions (their logical partitions are not followed). */
  readonly extended: readonly number[];
  /** What the whole disk holds when it has no partition table. */
  readonly wholeDisk?: FsInfo;
}

interface TableEntry {
  readonly number: number;
  readonly start: number;
  readonly size: number;
  readonly partuuid: string;
}

/** The partition as e2fsprogs names it (debugfs, tune2fs): `disk?offset=N`. */
export function extDevice(p: Pick<Part, "disk" | "start">): string {
  return `${p.disk}?offset=${p.start}`;
}

/** The partition as mtools names it (`-i`): `disk@@N`. */
export function fatImage(p: Pick<Part, "disk" | "start">): string {
  return `${p.disk}@@${p.start}`;
}

/**
 * A filesystem that claims more bytes than its partition holds: tools that
 * reach it by offset could write past the partition, so it is not touched.
 */
function bounded(info: FsInfo, size: number): FsInfo {
  if (info.type === "ext" && info.bytes > size && info.damage === undefined) {
    return { ...info, damage: `it claims ${info.bytes} bytes, more than its partition's ${size}` };
  }
  if (info.type === "vfat" && info.bytes > size) return { type: "unknown" };
  return info;
}

/** Probe what every entry of a partition table holds. */
function probeParts<E extends TableEntry>(
  disk: string,
  entries: readonly E[],
  extra: (e: E) => Partial<Part>,
): Promise<Part[]> {
  return Promise.all(
    entries.map(async (p) => {
      const info = bounded(await probeAt(disk, p.start), p.size);
      const base = { number: p.number, start: p.start, size: p.size, partuuid: p.partuuid };
      return { ...base, name: "", ...extra(p), disk, fs: info };
    }),
  );
}

/** Read the layout of `disk` (a raw view of the image, `size` bytes). */
export async function readLayout(disk: string, size: number): Promise<DiskLayout> {
  if (/[?]|@@/.test(disk)) {
    throw new GlintError(
      `internal: ${disk}: a work path with "?" or "@@" cannot be given to tools`,
    );
  }
  const gpt = await readGpt(disk, size);
  if (gpt) {
    const parts = await probeParts(disk, gpt.partitions, (p) => ({
      typeGuid: p.typeGuid,
      name: p.name,
    }));
    return { table: "gpt", diskGuid: gpt.diskGuid, parts, extended: [] };
  }
  const head = await readAt(disk, 0, 0x11000);
  const mbr = parseMbr(head.subarray(0, 512), size);
  if (mbr) {
    const parts = await probeParts(disk, mbr.partitions, (p) => ({ mbrType: p.type }));
    return { table: "mbr", mbrSignature: mbr.signature, parts, extended: mbr.extended };
  }
  return { table: "none", parts: [], extended: [], wholeDisk: probeBytes(head) };
}

/** "partition 2 (ext, /)"-style name for reports. */
export function partLabel(p: Part, role?: string): string {
  const t = p.fs.type;
  return `partition ${p.number} (${t}${role ? `, ${role}` : ""})`;
}
