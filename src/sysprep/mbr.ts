/**
 * MBR (DOS) partition tables: the four primary entries and the disk
 * signature (offset 440), whose hex is the PARTUUID prefix (`abcd1234-01`).
 */
import { GlintError } from "../errors.js";

export interface MbrPartition {
  readonly number: number;
  readonly start: number;
  readonly size: number;
  readonly type: number;
  readonly partuuid: string;
}

export interface Mbr {
  readonly signature: string;
  readonly partitions: readonly MbrPartition[];
  /** Extended partitions, whose logical partitions Glint does not follow. */
  readonly extended: readonly number[];
}

const EXTENDED = new Set([0x05, 0x0f, 0x85]);

/** Parse sector 0; undefined if it has no 0x55AA mark or is a GPT protective MBR. */
export function parseMbr(sector0: Buffer, diskSize: number): Mbr | undefined {
  if (sector0.length < 512 || sector0.readUInt16LE(510) !== 0xaa55) return undefined;
  const signature = sector0.readUInt32LE(440).toString(16).padStart(8, "0");
  const partitions: MbrPartition[] = [];
  const extended: number[] = [];
  for (let i = 0; i < 4; i++) {
    const e = sector0.subarray(446 + i * 16, 462 + i * 16);
    const status = e[0] ?? 0;
    const type = e[4] ?? 0;
    if (type === 0) continue;
    if (type === 0xee) return undefined;
    if (status !== 0 && status !== 0x80) return undefined; // not a partition table (e.g. a bare vfat)
    const start = e.readUInt32LE(8) * 512;
    const size = e.readUInt32LE(12) * 512;
    if (start === 0 || start + size > diskSize) {
      throw new GlintError(`MBR partition ${i + 1} lies outside the disk`, {
        code: "invalid-file",
      });
    }
    if (EXTENDED.has(type)) {
      extended.push(i + 1);
      continue;
    }
    partitions.push({ number: i + 1, start, size, type, partuuid: mbrPartuuid(signature, i + 1) });
  }
  if (partitions.length === 0 && extended.length === 0) return undefined;
  return { signature, partitions, extended };
}

export function mbrPartuuid(signature: string, n: number): string {
  return `${signature}-${n.toString(16).padStart(2, "0")}`;
}

/** The 4 bytes to write at offset 440 for signature `hex8`. */
export function mbrSignatureBytes(hex8: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(Number.parseInt(hex8, 16) >>> 0, 0);
  return b;
}
