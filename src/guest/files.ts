/**
 * Temp files for the guest files: written next to their target (same
 * directory, so a rename is atomic), named like src/vm/atomic.ts names its
 * temps so that `removeStaleTemps` cleans up after a killed writer.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { fsyncDir } from "../vm/atomic.js";

/** `.<name>[.<tag>].tmp-<pid>-<8 hex>` next to `target`. */
export function tempPathFor(target: string, tag?: string): string {
  const base = tag ? `${path.basename(target)}.${tag}` : path.basename(target);
  return path.join(
    path.dirname(target),
    `.${base}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

/**
 * Write `data` to a new temp file next to `target` with exactly `mode`
 * (chmod after open, so the umask does not matter) and fsync it.
 * Returns the temp path; the caller renames it into place.
 */
export async function writeTemp(
  target: string,
  data: string | Uint8Array,
  mode: number,
): Promise<string> {
  const tmp = tempPathFor(target);
  const fh = await fs.open(tmp, "wx", mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } catch (error) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await fh.close();
  return tmp;
}

/** fsync a file that is already written (e.g. by an external tool). */
export async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.open(file, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Rename `tmp` over `target` and fsync the directory; removes `tmp` on failure. */
export async function renameIntoPlace(tmp: string, target: string): Promise<void> {
  try {
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(target));
}
