/**
 * Whether a VM's QEMU is running, from the pidfile that `glint run` asks
 * QEMU to write (`-pidfile <vm>/qemu.pid`). The VM lock covers `glint run`
 * itself; the pidfile covers a QEMU that outlived it (its `glint run` was
 * killed), so that no command changes the disks, NVRAM or TPM state under a
 * live guest.
 */
import { readFileSync } from "node:fs";
import { BusyError } from "../errors.js";
import { readFileIfExists } from "./fsutil.js";
import type { VmPaths } from "./layout.js";

/** The pid of the VM's running QEMU, or undefined if it does not run. */
export async function runningQemuPid(paths: VmPaths): Promise<number | undefined> {
  const raw = await readFileIfExists(paths.pidfile).catch(() => undefined);
  const pid = Number(raw?.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return undefined; // gone
  }
  // A reused pid belongs to another program: only a process started with
  // this VM's pidfile is its QEMU.
  return cmdline.split("\0").includes(paths.pidfile) ? pid : undefined;
}

/** Throws a BusyError while the VM's QEMU runs (even one whose `glint run` died). */
export async function assertNotRunning(paths: VmPaths): Promise<void> {
  const pid = await runningQemuPid(paths);
  if (pid !== undefined) {
    throw new BusyError(`VM "${paths.name}" is running: QEMU process ${pid} uses its disks`, {
      vm: paths.name,
      pid,
      purpose: "qemu",
      reason: "running",
    });
  }
}
