/**
 * Crash-safe file replacement: write a temp file in the same directory,
 * fsync it, rename it over the target, then fsync the directory. A reader
 * (or a process killed at any instant) sees either the old or the new file.
 *
 * The two halves are exported separately so that multi-file operations can
 * prepare every temp file first and rename them all only when all succeeded.
 * Temp files are named `.<name>[.<tag>].tmp-<pid>-<8 hex>`, so that
 * {@link removeStaleTemps} can clean up after a killed writer.
 */
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { TEMP_FILE_RE, tempPathFor } from "./layout.js";
import { symlinkRefused, systemError } from "./syserror.js";

export { tempPathFor };

/** fsync a directory so that a rename or create inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
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

/**
 * Write `data` to a new temp file next to `target` with exactly `mode`
 * (chmod after open, so the umask does not matter) and fsync it.
 * Returns the temp path; rename it into place with {@link renameIntoPlace}.
 */
export async function writeTemp(
  target: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<string> {
  const tmp = tempPathFor(target);
  let fh: Awaited<ReturnType<typeof fs.open>>;
  try {
    fh = await fs.open(tmp, "wx", mode);
  } catch (error) {
    throw systemError(error, target, "writing");
  }
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } catch (error) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw systemError(error, target, "writing");
  }
  await fh.close();
  return tmp;
}

export interface CopyOptions {
  /**
   * Follow a symlink at `source` (for paths the user or the system gives,
   * such as a base image or the OVMF template). By default a symlinked source
   * is refused: files in a VM directory are never read through a link.
   */
  followSymlinks?: boolean;
}

/**
 * Copy `source` to a new, fsynced temp file next to `target`, with the
 * source's permission bits; returns the temp path.
 */
export async function copyToTemp(
  source: string,
  target: string,
  options: CopyOptions = {},
): Promise<string> {
  // Without following: open the source itself (O_NOFOLLOW), then copy from
  // that open file through /proc/self/fd, so a link swapped in meanwhile is not read either.
  const src = options.followSymlinks ? undefined : await openSource(source);
  const tmp = tempPathFor(target);
  try {
    await fs.copyFile(
      src ? `/proc/self/fd/${src.fd}` : source,
      tmp,
      constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE,
    );
    await fsyncFile(tmp);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw error;
    throw systemError(error, target, "writing");
  } finally {
    await src?.close();
  }
  return tmp;
}

/** Open a regular file for copying, refusing a symlink (and never blocking on a FIFO). */
async function openSource(source: string): Promise<Awaited<ReturnType<typeof fs.open>>> {
  let fh: Awaited<ReturnType<typeof fs.open>>;
  try {
    fh = await fs.open(source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP") throw symlinkRefused(source);
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw error;
    throw systemError(error, source, "reading");
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw new GlintError(`${source} is not a regular file: move it out of the way and try again`);
  }
  return fh;
}

/** Rename `tmp` over `target` and fsync the directory; removes `tmp` on failure. */
export async function renameIntoPlace(tmp: string, target: string): Promise<void> {
  try {
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw systemError(error, target, "replacing");
  }
  await fsyncDir(path.dirname(target));
}

/** Atomically replace `target` with `data`. */
export async function writeFileAtomic(
  target: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  await renameIntoPlace(await writeTemp(target, data, options.mode ?? 0o644), target);
}

/**
 * Atomically replace `target` with a copy of `source` (e.g. a fresh UEFI
 * NVRAM), keeping the source's mode. A symlinked source is refused unless
 * `followSymlinks`.
 */
export async function copyFileAtomic(
  source: string,
  target: string,
  options: CopyOptions = {},
): Promise<void> {
  await renameIntoPlace(await copyToTemp(source, target, options), target);
}

/** Remove temp files (or directories) that a killed writer left in `dir`. */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => {
        const m = TEMP_FILE_RE.exec(n);
        return m !== null && !isAlive(Number(m[1]));
      })
      .map((n) => fs.rm(path.join(dir, n), { force: true, recursive: true })),
  );
}

/** Whether process `pid` exists (EPERM counts as alive). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
