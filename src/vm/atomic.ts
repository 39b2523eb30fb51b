/**
 * Crash-safe file replacement: write a temp file in the same directory,
 * fsync it, rename it over the target, then fsync the directory. A reader
 * (or a process killed at any instant) sees either the old or the new file.
 */
import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";

function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

/** fsync a directory so that a rename or create inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function commit(tmp: string, target: string): Promise<void> {
  try {
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(target));
}

/** Atomically replace `target` with `data`. */
export async function writeFileAtomic(
  target: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const tmp = tempPathFor(target);
  const fh = await fs.open(tmp, "wx", options.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (error) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await fh.close();
  await commit(tmp, target);
}

/** Atomically replace `target` with a copy of `source` (e.g. a fresh UEFI NVRAM). */
export async function copyFileAtomic(source: string, target: string): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    await fs.copyFile(source, tmp, constants.COPYFILE_EXCL);
    const fh = await fs.open(tmp, "r+");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await commit(tmp, target);
}

/** Remove temp files that a killed writer left next to `dir`'s entries. */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => /^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(n))
      .filter((n) => !isAlive(Number(n.split(".tmp-")[1]?.split("-")[0])))
      .map((n) => fs.rm(path.join(dir, n), { force: true, recursive: true })),
  );
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
