/**
 * Small file-system queries shared by the firmware, guest and menu code, and
 * the reads of files in a VM directory, which never follow a symlink (Glint
 * does not follow links it did not create) and never block on a FIFO.
 */
import { closeSync, constants, promises as fs, fstatSync, openSync, readFileSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { GlintError } from "../errors.js";
import { symlinkRefused, systemError } from "./syserror.js";

/** Whether `file` exists and is a regular file (symlinks followed); never throws. */
export async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

/** O_NOFOLLOW: a symlink as the last component fails with ELOOP; O_NONBLOCK: a FIFO does not hang. */
const NOFOLLOW_READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** An error opening `file` to read it: `undefined` when it does not exist, else thrown, explained. */
function missingOrThrow(error: unknown, file: string): undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return undefined;
  if (code === "ELOOP") throw symlinkRefused(file);
  throw systemError(error, file, "reading");
}

/** Refuse to read a directory, FIFO, socket or device as a file. */
function assertRegularFile(st: { isDirectory(): boolean; isFile(): boolean }, file: string): void {
  if (st.isDirectory()) {
    throw systemError(Object.assign(new Error("EISDIR"), { code: "EISDIR" }), file, "reading");
  }
  if (!st.isFile()) {
    throw new GlintError(
      `${file} is not a regular file (a FIFO, socket or device): move it out of the way and try again`,
    );
  }
}

/**
 * The bytes and permission bits of the regular file `file`, or `undefined`
 * if it does not exist. A symlink, directory, FIFO or device is refused with
 * a GlintError naming it; other system errors are explained (see syserror.ts).
 */
export async function readNoFollow(
  file: string,
): Promise<{ data: Buffer; mode: number } | undefined> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, NOFOLLOW_READ);
  } catch (error) {
    return missingOrThrow(error, file);
  }
  try {
    const st = await fh.stat();
    assertRegularFile(st, file);
    return { data: await fh.readFile(), mode: st.mode & 0o7777 };
  } catch (error) {
    throw systemError(error, file, "reading");
  } finally {
    await fh.close();
  }
}

/**
 * {@link readNoFollow}'s text, synchronously: for the many small files of a
 * scan of every VM, where the thread pool's round trips cost more than the
 * reads.
 */
export function readFileIfExistsSync(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, NOFOLLOW_READ);
  } catch (error) {
    return missingOrThrow(error, file);
  }
  try {
    const st = fstatSync(fd);
    assertRegularFile(st, file);
    return readFileSync(fd, "utf8");
  } catch (error) {
    throw systemError(error, file, "reading");
  } finally {
    closeSync(fd);
  }
}

/**
 * The text of `file`, or `undefined` if it does not exist. Never follows a
 * symlink; other errors throw (explained, naming the file).
 */
export async function readFileIfExists(file: string): Promise<string | undefined> {
  return (await readNoFollow(file))?.data.toString("utf8");
}

/** `text` without a leading UTF-8 byte order mark (editors write one; JSON.parse rejects it). */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * `mkdir -p dir`, with a system error that names the real cause and path:
 * Node's recursive mkdir reports ENOENT for a read-only parent and names the
 * whole path, so on failure the path is created one level at a time.
 */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true });
    return;
  } catch {
    // Find the level that fails, and why.
  }
  const levels: string[] = [];
  for (let d = path.resolve(dir); d !== path.dirname(d); d = path.dirname(d)) levels.unshift(d);
  for (const level of levels) {
    try {
      await fs.mkdir(level);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw systemError(error, level, "creating");
      }
    }
  }
}
