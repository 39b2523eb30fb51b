/**
 * Helpers for the reliability and security tests: a tiny tmpfs to fill up,
 * a home with a ready-made VM to copy, and a check for terminal control
 * characters in output.
 */
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { charClass } from "../../src/cli/printable.js";

/**
 * Mount a tmpfs of `size` (e.g. "256k") on a fresh directory and return it.
 * Needs root (CI runs as root); a failed mount throws, it never skips.
 * `unmount()` detaches it and removes the directory.
 */
export async function mountTmpfs(
  size: string,
): Promise<{ dir: string; unmount: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "glint-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (error) {
    await fs.rm(dir, { recursive: true, force: true });
    const why = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? String(error);
    throw new Error(`cannot mount a tmpfs on ${dir} (the full-disk tests need root): ${why}`);
  }
  return {
    dir,
    unmount: async () => {
      execFileSync("umount", ["-l", dir]);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Fill the file system holding `dir` until a write fails with ENOSPC; returns the filler file. */
export async function fillDisk(dir: string): Promise<string> {
  const file = path.join(dir, "filler");
  const fh = await fs.open(file, "w");
  const chunk = Buffer.alloc(4096, 0x55);
  try {
    for (;;) await fh.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    await fh.close();
  }
  return file;
}

/** Remount a tmpfs read-only (or read-write again). */
export function remount(dir: string, mode: "ro" | "rw"): void {
  execFileSync("mount", ["-o", `remount,${mode}`, dir]);
}

/**
 * Characters that a terminal interprets (C0 except tab and newline, DEL, C1)
 * plus the invisible bidirectional overrides: none of them may reach a
 * terminal from a file.
 */
export const TERMINAL_CONTROL_RE = new RegExp(
  charClass([0x00, 0x08], [0x0b, 0x1f], [0x7f, 0x9f], [0x202a, 0x202e], [0x2066, 0x2069]).source,
);

/** Every file name under `dir`, recursively, relative to it. */
export async function listTree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true });
  return entries.map(String).sort();
}
