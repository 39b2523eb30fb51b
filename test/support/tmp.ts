/**
 * The one temp-dir helper. Every directory it makes is removed
 * automatically: at the end of the test when made inside a test (or its
 * beforeEach), otherwise once the test file has finished (beforeAll,
 * describe blocks). Importing this module registers that file-level hook.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, onTestFinished } from "vitest";

const untilFileEnd = new Set<string>();

afterAll(async () => {
  const dirs = [...untilFileEnd];
  untilFileEnd.clear();
  await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

/** A fresh directory under the OS temp dir whose name starts with `prefix`. */
export async function tempDir(prefix = "glint-test-"): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
  } catch {
    // Not inside a test: keep it until the file is done.
    untilFileEnd.add(dir);
  }
  return dir;
}
