/**
 * GPT: read and check both headers and the partition arrays (CRCs), and
 * change the disk GUID and PARTUUIDs in both copies.
 */

import { GlintError } from "../errors.js";
import { readAt, writeAt } from "./probe.js";

export const ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
export const SWAP_TYPE = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f";
export const LVM_TYPE = "e6d6d379-f507-44c2-a23c-238f2a3df928";

export interface GptPartition {
  readonly number: number;
  readonly start: number;
  readonly size: number;
  readonly typeGuid: string;
  readonly partuuid: string;
  readonly name: string;
}

export interface Gpt {
  readonly diskGuid: string;
  readonly partitions: readonly GptPartition[];
}

const INVALID = { code: "invalid-file" } as const;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE), as GPT uses it. */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = (CRC_TABLE[(c ^ x) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A GUID from its 16 on-disk bytes (first three fields little-endian). */
export function guidFromBytes(b: Uint8Array): string {
  const x = Buffer.from(b);
  const h = (s: Buffer) => s.toString("hex");
  const le = (s: Buffer) => h(Buffer.from(s).reverse());
  return `${le(x.subarray(0, 4))}-${le(x.subarray(4, 6))}-${le(x.subarray(6, 8))}-${h(x.subarray(8, 10))}-${h(x.subarray(10, 16))}`;
}

interface Header {
  readonly alternateLba: bigint;
  readonly entriesLba: bigint;
  readonly count: number;
  readonly entrySize: number;
  readonly entriesCrc: number;
  readonly diskGuid: string;
}

function parseHeader(b: Buffer, where: string): Header {
  if (b.toString("latin1", 0, 8) !== "EFI PART")
    throw new GlintError(`${where} GPT header missing`, INVALID);
  const size = b.readUInt32LE(12);
  if (size < 92 || size > 512) throw new GlintError(`${where} GPT header has a bad size`, INVALID);
  const copy = Buffer.from(b.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== b.readUInt32LE(16))
    throw new GlintError(`${where} GPT header CRC mismatch`, INVALID);
  const count = b.readUInt32LE(80);
  const entrySize = b.readUInt32LE(84);
  if (entrySize < 128 || count > 4096)
    throw new GlintError(`${where} GPT has a bad partition array`, INVALID);
  return {
    alternateLba: b.readBigUInt64LE(32),
    entriesLba: b.readBigUInt64LE(72),
    count,
    entrySize,
    entriesCrc: b.readUInt32LE(88),
    diskGuid: guidFromBytes(b.subarray(56, 72)),
  };
}

async function readEntries(disk: string, h: Header, where: string): Promise<Buffer> {
  const len = h.count * h.entrySize;
  const entries = await readAt(disk, Number(h.entriesLba) * 512, len);
  if (entries.length !== len || crc32(entries) !== h.entriesCrc) {
    throw new GlintError(`${where} GPT partition array CRC mismatch`, INVALID);
  }
  return entries;
}

/**
 * Read the GPT of `disk` (512-byte sectors). Returns undefined if LBA 1 has no
 * GPT signature; throws a GlintError if either header or array is corrupt.
 */
export async function readGpt(disk: string, diskSize: number): Promise<Gpt | undefined> {
  const primary = await readAt(disk, 512, 512);
  if (primary.toString("latin1", 0, 8) !== "EFI PART") return undefined;
  const h = parseHeader(primary, "primary");
  const entries = await readEntries(disk, h, "primary");
  const altLba = Number(h.alternateLba);
  if (altLba * 512 + 512 > diskSize)
    throw new GlintError("backup GPT header lies past the end of the disk", INVALID);
  const backup = parseHeader(await readAt(disk, altLba * 512, 512), "backup");
  const backupEntries = await readEntries(disk, backup, "backup");
  if (!backupEntries.equals(entries) || backup.diskGuid !== h.diskGuid) {
    throw new GlintError("primary and backup GPT differ", INVALID);
  }
  const partitions: GptPartition[] = [];
  for (let i = 0; i < h.count; i++) {
    const e = entries.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const first = Number(e.readBigUInt64LE(32));
    const last = Number(e.readBigUInt64LE(40));
    if (last < first || (last + 1) * 512 > diskSize) {
      throw new GlintError(`GPT partition ${i + 1} lies outside the disk`, INVALID);
    }
    const name = e.subarray(56, 128).toString("utf16le").replace(/\0.*$/s, "");
    partitions.push({
      number: i + 1,
      start: first * 512,
      size: (last - first + 1) * 512,
      typeGuid: guidFromBytes(e.subarray(0, 16)),
      partuuid: guidFromBytes(e.subarray(16, 32)),
      name,
    });
  }
  return { diskGuid: h.diskGuid, partitions };
}

/** The 16 on-disk bytes of a GUID (first three fields little-endian). */
export function guidToBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new RangeError(`not a GUID: ${guid}`);
  const b = Buffer.from(h, "hex");
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/**
 * Set the disk GUID and PARTUUIDs in both GPT copies, recomputing the array
 * and header CRCs (our own writer: sgdisk syncs every filesystem and sleeps a
 * second after writing). The table must have passed readGpt.
 */
export async function writeGptGuids(
  disk: string,
  diskGuid: string | undefined,
  partuuids: ReadonlyMap<number, string>,
): Promise<void> {
  if (diskGuid === undefined && partuuids.size === 0) return;
  const primary = await readAt(disk, 512, 512);
  const altLba = Number(primary.readBigUInt64LE(32));
  const backup = await readAt(disk, altLba * 512, 512);
  for (const [header, lba] of [
    [primary, 1],
    [backup, altLba],
  ] as const) {
    const h = parseHeader(header, lba === 1 ? "primary" : "backup");
    const entries = await readEntries(disk, h, lba === 1 ? "primary" : "backup");
    for (const [n, g] of partuuids) {
      if (n < 1 || n > h.count) throw new GlintError(`GPT has no partition ${n}`, INVALID);
      guidToBytes(g).copy(entries, (n - 1) * h.entrySize + 16);
    }
    header.writeUInt32LE(crc32(entries), 88);
    if (diskGuid !== undefined) guidToBytes(diskGuid).copy(header, 56);
    const size = header.readUInt32LE(12);
    header.writeUInt32LE(0, 16);
    header.writeUInt32LE(crc32(header.subarray(0, size)), 16);
    await writeAt(disk, Number(h.entriesLba) * 512, entries);
    await writeAt(disk, lba * 512, header);
  }
}
