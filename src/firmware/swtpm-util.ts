/** Small helpers shared by swtpm manufacturing and the swtpm sidecar. */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { isAlive } from "../vm/atomic.js";

/** Paths that may appear verbatim in swtpm options / swtpm_setup.conf / `--tpm`. */
export const PLAIN_PATH_RE = /^[A-Za-z0-9._/+-]+$/;

/** `: <last non-empty line>` of a tool's output, or "". */
export function tail(output: string): string {
  const line = lastLine(output);
  return line === "" ? "" : `: ${line}`;
}

export function lastLine(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return lines.at(-1) ?? "";
}

/**
 * A new temp directory `<root>/<prefix><pid>-XXXXXX`. Directories of that
 * prefix left by processes that are gone (killed mid-setup) are removed first.
 */
export async function ownedTempDir(root: string, prefix: string): Promise<string> {
  const names = await fs.readdir(root).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((n) => n.startsWith(prefix))
      .filter((n) => {
        const pid = Number(n.slice(prefix.length).split("-")[0]);
        return Number.isInteger(pid) && pid > 0 && !isAlive(pid);
      })
      .map((n) => fs.rm(path.join(root, n), { recursive: true, force: true })),
  );
  return fs.mkdtemp(path.join(root, `${prefix}${process.pid}-`));
}

/** A temp root usable verbatim in swtpm options and config files. */
export function plainTmpRoot(env: NodeJS.ProcessEnv): string {
  const candidate = env.TMPDIR !== undefined && env.TMPDIR !== "" ? env.TMPDIR : os.tmpdir();
  const abs = path.resolve(candidate);
  return PLAIN_PATH_RE.test(abs) ? abs : "/tmp";
}

/** Like plainTmpRoot, but short enough for `<root>/glint-tpm-XXXXXX/swtpm.sock`. */
export function shortTmpRoot(env: NodeJS.ProcessEnv): string {
  const root = plainTmpRoot(env);
  return Buffer.byteLength(root) <= 64 ? root : "/tmp";
}
