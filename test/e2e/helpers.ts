/**
 * Shared helpers of the real-guest tests: run the built `glint` CLI and boot
 * the tiny guest through `glint run`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import {
  bootGuest,
  buildInitramfs,
  findKernel,
  guestKernelArgs,
  type RunResult,
} from "./guest/tiny-guest.js";

const execFileAsync = promisify(execFile);

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = path.join(ROOT, "dist", "cli", "main.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `glint …` (the built CLI) and return its exit code and output. */
export async function glint(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}

/** `glint …` that must succeed. */
export async function glintOk(args: readonly string[]): Promise<string> {
  const r = await glint(args);
  if (r.code !== 0) throw new Error(`glint ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export async function readIds(home: string, vm: string): Promise<SystemIdentifiers> {
  return JSON.parse(
    await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"),
  ) as SystemIdentifiers;
}

export async function tempHome(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface TinyGuest {
  kernel: string;
  initrd: string;
}

/** Build (or reuse) the tiny guest: Debian kernel + busybox initramfs. */
export async function tinyGuest(): Promise<TinyGuest> {
  const kernel = findKernel();
  const initrd = await buildInitramfs({ kernel });
  return { kernel: kernel.kernel, initrd };
}

/** Boot the tiny guest with `glint run <vm>` and return what the guest printed. */
export async function bootWithGlint(
  home: string,
  vm: string,
  guest: TinyGuest,
  append = "",
  extra: readonly string[] = [],
): Promise<RunResult> {
  return bootGuest({
    command: [process.execPath, CLI, "run", vm, "--home", home, "--"],
    qemuArgs: [...guestKernelArgs(guest.kernel, guest.initrd, append), "-accel", "tcg", ...extra],
    timeoutMs: 180_000,
  });
}

/**
 * Stop a `glint run` started with `detached: true` and everything it started
 * (QEMU, swtpm): SIGTERM to its process group, SIGKILL after 5 s, then wait.
 */
export async function stopGroup(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, s);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const killer = setTimeout(() => signal("SIGKILL"), 5000);
  await exited;
  clearTimeout(killer);
  signal("SIGKILL"); // QEMU or swtpm left behind by the group leader
}

/** `glint run <vm>` with no display, monitor or serial under TCG, in its own process group. */
export function startGlintRun(
  home: string,
  vm: string,
  extra: readonly string[] = [],
): { exited: Promise<number | null>; stderr: () => string; stop: () => Promise<void> } {
  const child = spawn(
    process.execPath,
    [
      CLI,
      "run",
      vm,
      "--home",
      home,
      "--",
      ...extra,
      "-display",
      "none",
      "-monitor",
      "none",
      "-serial",
      "none",
      "-accel",
      "tcg",
    ],
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let stderr = "";
  child.stderr?.on("data", (c) => {
    stderr += String(c);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { exited, stderr: () => stderr, stop: () => stopGroup(child, exited) };
}
