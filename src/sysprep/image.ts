/**
 * All or nothing: sysprep works on a temp copy next to the image (a qcow2
 * overlay is small; a raw image is copied sparse, or reflinked) and renames it
 * over the image at the end. Work directories and copies left by a killed run
 * (its pid no longer alive) are removed by the next run, including a
 * qemu-storage-daemon it left behind and its FUSE mounts.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GlintError } from "../errors.js";
import { runTool } from "../host/tools.js";
import { isMounted } from "./fuse-export.js";
import { readAt } from "./probe.js";

export type ImageFormat = "qcow2" | "raw";

/** qcow2 if the file starts with the qcow2 magic, else raw. */
export async function detectFormat(image: string): Promise<ImageFormat> {
  const head = await readAt(image, 0, 4);
  return head.equals(Buffer.from([0x51, 0x46, 0x49, 0xfb])) ? "qcow2" : "raw";
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

const WORK_PREFIX = "glint-sysprep-";

/** A fresh work directory in the system temp dir, tagged with our pid. */
export async function makeWorkDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `${WORK_PREFIX}${process.pid}-`));
}

/** The temp copy's path: `.<name>.sysprep-<pid>.tmp` next to the image. */
export function tempImagePath(image: string): string {
  return path.join(path.dirname(image), `.${path.basename(image)}.sysprep-${process.pid}.tmp`);
}

/** Remove what killed runs left: work dirs (and their daemons, mounts) and temp copies of `image`. */
export async function cleanStale(image: string, env?: NodeJS.ProcessEnv): Promise<void> {
  const tmp = os.tmpdir();
  for (const name of await fs.readdir(tmp).catch(() => [] as string[])) {
    const m = new RegExp(`^${WORK_PREFIX}(\\d+)-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const dir = path.join(tmp, name);
    const st = await fs.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const qsd = Number(
      (await fs.readFile(path.join(dir, "qsd.pid"), "utf8").catch(() => "")).trim(),
    );
    if (Number.isInteger(qsd) && qsd > 0 && alive(qsd)) {
      const cmd = await fs.readFile(`/proc/${qsd}/cmdline`, "utf8").catch(() => "");
      if (cmd.includes(dir)) {
        process.kill(qsd, "SIGKILL");
        for (let i = 0; i < 100 && alive(qsd); i++) await new Promise((r) => setTimeout(r, 10));
      }
    }
    for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
      const mp = path.join(dir, f);
      if (await isMounted(mp)) {
        await runTool("fusermount3", ["-u", "-z", mp], env ? { env } : {}).catch(() => undefined);
      }
    }
    await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
  const dir = path.dirname(image);
  const re = new RegExp(
    `^\\.${path.basename(image).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.sysprep-(\\d+)\\.tmp$`,
  );
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const m = re.exec(name);
    if (m && !alive(Number(m[1]))) await fs.rm(path.join(dir, name), { force: true });
  }
}

/** Copy `image` to its temp path (sparse, reflinked where the filesystem can). */
export async function makeTempCopy(image: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const st = await fs.lstat(image);
  if (!st.isFile()) throw new GlintError(`${image}: not a regular file`);
  const tmp = tempImagePath(image);
  await fs.rm(tmp, { force: true });
  await runTool("cp", ["--reflink=auto", "--sparse=always", "--", image, tmp], env ? { env } : {});
  await fs.chmod(tmp, st.mode & 0o7777);
  return tmp;
}

/**
 * Write the temp copy's data to the disk (`sync --data`, fdatasync) in the
 * background, while the image is read and written; commitTempCopy's fsync
 * then has little left to do. A process of its own, not node's thread pool:
 * the pool's threads draw the RSA key's primes and serve the file reads.
 */
export async function flushEarly(tmp: string, env?: NodeJS.ProcessEnv): Promise<void> {
  await runTool("sync", ["--data", "--", tmp], env ? { env } : {});
}

/** fsync the temp copy, rename it over the image, fsync the directory. */
export async function commitTempCopy(tmp: string, image: string): Promise<void> {
  const fh = await fs.open(tmp, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, image);
  const dh = await fs.open(path.dirname(image), "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
