/**
 * The tiny guest's build cache: one stable directory (os.tmpdir()/glint-e2e-cache)
 * in which every entry is named by a hash of all its inputs, so a changed
 * kernel, module, busybox, init script or extra file means a new entry and
 * an unchanged one is reused across test runs and worktrees.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** Bump when the layout of a cached image changes so old entries are ignored. */
export const FORMAT_VERSION = 2;

/** Default cache directory for built kernels and initramfs images. */
export const DEFAULT_CACHE_DIR = join(tmpdir(), "glint-e2e-cache");

/** SHA-256 over the given parts (each length-prefixed), as 16 hex digits. */
export function inputsHash(parts: readonly (string | Buffer)[]): string {
  const hash = createHash("sha256").update(`glint-e2e-cache v${FORMAT_VERSION}\0`);
  for (const part of parts) {
    const bytes = typeof part === "string" ? Buffer.from(part) : part;
    hash.update(`${bytes.length}\0`).update(bytes);
  }
  return hash.digest("hex").slice(0, 16);
}

/** SHA-256 of a file's content (hex). */
export async function fileHash(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

/** A unique temporary name next to `out`, for writing it and renaming into place. */
export function tempSibling(out: string): string {
  return `${out}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
}

/** Write `data` to `out` atomically (temp file + rename), creating the cache directory. */
export async function writeCached(out: string, data: Buffer): Promise<void> {
  await mkdir(dirname(out), { recursive: true });
  const tmp = tempSibling(out);
  try {
    await writeFile(tmp, data);
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
}
