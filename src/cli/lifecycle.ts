/**
 * Helpers of the lifecycle commands (start, stop, status, rm): where a
 * started VM's serial console and log go, and waiting for QEMU.
 */
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { UuidManager } from "../manager.js";
import type { VmPaths } from "../vm/layout.js";
import { runningQemuPid } from "../vm/running.js";

/** The serial console of a VM started with `glint start`. */
export function consoleLog(paths: VmPaths): string {
  return path.join(paths.dir, "console.log");
}

/** The serial console's socket of a VM started with `glint start` (`glint console` attaches to it). */
export function consoleSocket(paths: VmPaths): string {
  return path.join(paths.dir, "console.sock");
}

/** What the detached `glint run` of `glint start` printed (QEMU's and glint's messages). */
export function startLog(paths: VmPaths): string {
  return path.join(paths.dir, "qemu.log");
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until `test` holds or `ms` pass; resolves to whether it held. */
export async function waitFor(test: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await test()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

/** Waits until the VM's QEMU has exited and no glint process holds the VM. */
export async function waitStopped(m: UuidManager, vm: string, ms: number): Promise<boolean> {
  return waitFor(async () => {
    if ((await runningQemuPid(m.paths(vm))) !== undefined) return false;
    return m.assertNotBusy(vm).then(
      () => true,
      () => false,
    );
  }, ms);
}

export interface RunningInfo {
  pid: number;
  uptimeSeconds: number;
  vnc: string | null;
  qmp: string | null;
}

/** Facts about a running QEMU, from its pidfile and /proc. */
export function runningInfo(paths: VmPaths, pid: number): RunningInfo {
  let args: string[] = [];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    // gone meanwhile
  }
  const after = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? (args[i + 1] ?? null) : null;
  };
  let started = Date.now();
  try {
    started = statSync(paths.pidfile).mtimeMs;
  } catch {
    // no pidfile
  }
  return {
    pid,
    uptimeSeconds: Math.max(0, Math.round((Date.now() - started) / 1000)),
    vnc: after("-vnc"),
    qmp: after("-qmp"),
  };
}
