/**
 * vfat (the EFI system partition): the volume ID in the boot sector (and, on
 * FAT32, in its backup copy), and the files on it through mtools. `image` is
 * an mtools image name, `disk@@offset` (layout.ts fatImage).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { runTool } from "../host/tools.js";
import { readAt, vfatLayout, writeAt } from "./probe.js";

/** A vfat volume ID `XXXX-XXXX` from the first 8 hex digits of a UUID. */
export function vfatIdFromUuid(uuid: string): string {
  const h = uuid.replace(/-/g, "").slice(0, 8).toUpperCase();
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

/**
 * Write volume ID `id` (`XXXX-XXXX`) into the boot sector (and its FAT32
 * backup) of the volume at byte `start` of `disk`.
 */
export async function setVfatId(disk: string, start: number, id: string): Promise<void> {
  const boot = await readAt(disk, start, 512);
  const l = vfatLayout(boot);
  if (!l) throw new GlintError(`${disk}@${start}: not a FAT boot sector`);
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(Number.parseInt(id.replace("-", ""), 16) >>> 0, 0);
  await writeAt(disk, start + l.idOffset, bytes);
  if (l.fat32 && l.backupSector > 0) {
    const off = start + l.backupSector * l.bytesPerSector;
    const backup = await readAt(disk, off, 512);
    if (vfatLayout(backup)) await writeAt(disk, off + l.idOffset, bytes);
  }
}

const mtoolsEnv = (env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
  ...(env ?? process.env),
  MTOOLS_SKIP_CHECK: "1",
});

/** Every file path on the volume (`/EFI/debian/grub.cfg`, …). */
export async function listVfatFiles(image: string, env?: NodeJS.ProcessEnv): Promise<string[]> {
  const { stdout } = await runTool("mdir", ["-/", "-b", "-i", image, "::/"], {
    env: mtoolsEnv(env),
  });
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("::/") && !l.endsWith("/"))
    .map((l) => l.slice(2));
}

export async function readVfatFile(
  image: string,
  file: string,
  env?: NodeJS.ProcessEnv,
): Promise<Buffer> {
  const { stdout } = await runTool("mtype", ["-i", image, `::${file}`], {
    env: mtoolsEnv(env),
  });
  return Buffer.from(stdout, "utf8");
}

/** Replace `file` on the volume with `data`. */
export async function writeVfatFile(
  image: string,
  file: string,
  data: Buffer,
  workDir: string,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  const local = await fs.mkdtemp(path.join(workDir, "vfat-"));
  const src = path.join(local, path.posix.basename(file));
  await fs.writeFile(src, data);
  try {
    await runTool("mcopy", ["-o", "-i", image, src, `::${file}`], { env: mtoolsEnv(env) });
  } finally {
    await fs.rm(local, { recursive: true, force: true });
  }
}
