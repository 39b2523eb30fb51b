/**
 * Write what prepare() planned into the image, through the writable raw view
 * of the disk (fuse-export.ts): each partition by its offset, all at once
 * (they are disjoint byte ranges), with the partition table. The root
 * filesystem's last write waits for its SSH host keys, the slowest thing to
 * make, so everything else is written while they are drawn. xfs and LUKS
 * volumes, whose tools need a file of their own, come last.
 */
import { applyEdits, setExtUuid } from "./ext4.js";
import type { ImageExport } from "./fuse-export.js";
import { writeGptGuids } from "./gpt.js";
import { type DiskLayout, extDevice, fatImage, type Part } from "./layout.js";
import { luksSetUuid } from "./luks.js";
import { mbrSignatureBytes } from "./mbr.js";
import { type Prepared, rootKeyEdits } from "./prepare.js";
import { writeAt } from "./probe.js";
import { setSwapUuid } from "./swap.js";
import { setVfatId, writeVfatFile } from "./vfat.js";
import { setXfsUuid } from "./xfs.js";

interface WriteOptions {
  readonly workDir: string;
  readonly env?: NodeJS.ProcessEnv;
}

const fsChangeOf = (p: Prepared, part: Part) =>
  p.plan.changes.find((c) => c.part === part.number && c.kind !== "partuuid");

/** One partition reached by offset in the whole-disk file (ext, vfat, swap). */
async function writeByOffset(
  part: Part,
  p: Prepared,
  o: WriteOptions,
  progress: (m: string) => void,
): Promise<void> {
  const env = o.env;
  const fsChange = fsChangeOf(p, part);
  const isRoot = part.number === p.root.number;
  switch (part.fs.type) {
    case "ext": {
      const edits = p.extEdits.get(part.number)?.edits ?? [];
      if (!isRoot && !fsChange && edits.length === 0) return;
      progress(`writing partition ${part.number}`);
      const dev = extDevice(part);
      // The UUID first: the root's SSH host keys may still be being drawn.
      if (fsChange)
        await setExtUuid(dev, fsChange.new, part.fs.metadataCsum && !part.fs.csumSeed, env);
      const keyEdits = isRoot ? await rootKeyEdits(p) : [];
      await applyEdits(dev, [...edits, ...keyEdits], o);
      return;
    }
    case "vfat": {
      const files = p.vfatEdits.get(part.number) ?? [];
      if (!fsChange && files.length === 0) return;
      progress(`writing partition ${part.number}`);
      for (const f of files) await writeVfatFile(fatImage(part), f.path, f.data, o.workDir, env);
      if (fsChange) await setVfatId(part.disk, part.start, fsChange.new);
      return;
    }
    case "swap":
      if (!fsChange) return;
      progress(`writing partition ${part.number}`);
      await setSwapUuid(part.disk, part.start, fsChange.new);
      return;
    default:
      return;
  }
}

async function writeTable(
  p: Prepared,
  layout: DiskLayout,
  disk: string,
  progress: (m: string) => void,
): Promise<void> {
  const disk0 = p.plan.changes.filter((c) => c.part === 0);
  const partuuids = new Map(
    p.plan.changes.filter((c) => c.kind === "partuuid").map((c) => [c.part, c.new]),
  );
  const diskGuid = disk0.find((c) => c.kind === "gpt-disk-guid")?.new;
  const sig = disk0.find((c) => c.kind === "mbr-disk-signature")?.new;
  if (diskGuid === undefined && partuuids.size === 0 && sig === undefined) return;
  progress("writing the partition table");
  if (layout.table === "gpt") await writeGptGuids(disk, diskGuid, partuuids);
  else if (layout.table === "mbr" && sig !== undefined)
    await writeAt(disk, 440, mbrSignatureBytes(sig));
}

/** Write everything prepare() planned; `ex` is the writable export `layout` was read from. */
export async function apply(
  p: Prepared,
  layout: DiskLayout,
  ex: ImageExport,
  o: WriteOptions,
  progress: (m: string) => void,
): Promise<void> {
  const env = o.env;
  // Disjoint byte ranges: written concurrently. A failure fails the run (the
  // temp copy is then dropped), once every write has stopped.
  const results = await Promise.allSettled([
    ...layout.parts.map((part) => writeByOffset(part, p, o, progress)),
    writeTable(p, layout, ex.diskPath, progress),
  ]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  for (const part of layout.parts) {
    const fsChange = fsChangeOf(p, part);
    if (!fsChange || (part.fs.type !== "xfs" && part.fs.type !== "luks")) continue;
    progress(`writing partition ${part.number}`);
    const file = await ex.addPartition(part.number, part.start, part.size, true);
    if (part.fs.type === "xfs") await setXfsUuid(file, fsChange.new, env);
    else await luksSetUuid(file, fsChange.new, env);
    await ex.removePartition(part.number, true);
  }
}
