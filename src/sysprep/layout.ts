/**
 * The layout of a disk seen through an ImageExport: its partition table
 * (GPT or MBR), each partition exported as its own file, and what each holds.
 */
import { promises as fs } from "node:fs";
import type { ImageExport } from "./fuse-export.js";
import { readGpt } from "./gpt.js";
import { parseMbr } from "./mbr.js";
import { type FsInfo, probeBytes, probeFile, readAt } from "./probe.js";

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
  /** The partition as a plain file (FUSE export). */
  readonly file: string;
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

/** Export every entry of a partition table and probe what it holds. */
function exportParts<E extends TableEntry>(
  ex: ImageExport,
  entries: readonly E[],
  extra: (e: E) => Partial<Part>,
): Promise<Part[]> {
  return Promise.all(
    entries.map(async (p) => {
      const file = await ex.addPartition(p.number, p.start, p.size);
      const info = await probeFile(file);
      const base = { number: p.number, start: p.start, size: p.size, partuuid: p.partuuid };
      return { ...base, name: "", ...extra(p), file, fs: info };
    }),
  );
}

export async function readLayout(ex: ImageExport): Promise<DiskLayout> {
  const size = (await fs.stat(ex.diskPath)).size;
  const gpt = await readGpt(ex.diskPath, size);
  if (gpt) {
    const parts = await exportParts(ex, gpt.partitions, (p) => ({
      typeGuid: p.typeGuid,
      name: p.name,
    }));
    return { table: "gpt", diskGuid: gpt.diskGuid, parts, extended: [] };
  }
  const head = await readAt(ex.diskPath, 0, 0x11000);
  const mbr = parseMbr(head.subarray(0, 512), size);
  if (mbr) {
    const parts = await exportParts(ex, mbr.partitions, (p) => ({ mbrType: p.type }));
    return { table: "mbr", mbrSignature: mbr.signature, parts, extended: mbr.extended };
  }
  return { table: "none", parts: [], extended: [], wholeDisk: probeBytes(head) };
}

/** "partition 2 (ext, /)"-style name for reports. */
export function partLabel(p: Part, role?: string): string {
  const t = p.fs.type;
  return `partition ${p.number} (${t}${role ? `, ${role}` : ""})`;
}
