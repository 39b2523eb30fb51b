/**
 * The Debian guest images of the real-guest tests, built by build-image.sh
 * and cached in `$GLINT_TEST_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/glint-test`,
 * under a name keyed by a SHA-256 of every input (the suite, the builder and
 * the files it installs in the guest). A build writes temporary files and
 * renames them into place, so a killed build never leaves a half image;
 * a new builder version removes the older images of its suite.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type GuestReport, parseReports } from "./report.js";

const execFileAsync = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUILDER = path.join(HERE, "build-image.sh");
const GUEST_FILES = [
  "glint-report",
  "glint-report.service",
  "90-glint-test.cfg",
  "glint-test.interfaces",
].map((f) => path.join(HERE, "guest", f));

export type DebianSuite = "bookworm" | "trixie";

export interface DebianImage {
  suite: DebianSuite;
  /** The used base image (qcow2). */
  image: string;
  /** What the base guest reported on the boot that put it in its used state. */
  base: GuestReport;
}

/** The stable cache directory of the test images. */
export function testCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GLINT_TEST_CACHE) return path.resolve(env.GLINT_TEST_CACHE);
  const xdg = env.XDG_CACHE_HOME
    ? path.resolve(env.XDG_CACHE_HOME)
    : path.join(os.homedir(), ".cache");
  return path.join(xdg, "glint-test");
}

/** The cache key: SHA-256 over the suite, the builder and the guest files. */
export async function imageKey(suite: DebianSuite): Promise<string> {
  const h = createHash("sha256").update(`suite=${suite}\n`);
  for (const file of [BUILDER, ...GUEST_FILES]) {
    h.update(`${path.basename(file)}\n`).update(await fs.readFile(file));
  }
  return h.digest("hex").slice(0, 16);
}

async function readBase(image: string): Promise<GuestReport> {
  const reports = parseReports(await fs.readFile(`${image}.report`, "utf8"));
  const last = reports.at(-1);
  if (!last) throw new Error(`${image}.report holds no complete report`);
  return last;
}

/** Build (or reuse from the cache) the used Debian `suite` image. */
export async function debianImage(suite: DebianSuite): Promise<DebianImage> {
  const dir = testCacheDir();
  await fs.mkdir(dir, { recursive: true });
  const prefix = `debian-${suite}-`;
  const image = path.join(dir, `${prefix}${await imageKey(suite)}.qcow2`);
  if (existsSync(image) && existsSync(`${image}.report`)) {
    return { suite, image, base: await readBase(image) };
  }
  // Older builder versions of this suite, and builds that were killed.
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith(prefix) && !name.startsWith(path.basename(image))) {
      await fs.rm(path.join(dir, name), { recursive: true, force: true });
    }
  }
  const started = Date.now();
  await execFileAsync("bash", [BUILDER, suite, image], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: 45 * 60_000,
  });
  process.stderr.write(`built ${image} in ${Math.round((Date.now() - started) / 1000)} s\n`);
  return { suite, image, base: await readBase(image) };
}
