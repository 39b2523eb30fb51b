/**
 * The KVM start watch of `glint run --accel auto` (src/ops/kvm-watch.ts),
 * against a real QEMU (TCG, so that it runs on any host): a guest that runs
 * shows progress; one that never runs an instruction (here: paused with -S,
 * as a guest under a broken KVM looks) is reported; so is QEMU's "KVM
 * internal error" message.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { watchKvmStart } from "../../src/ops/kvm-watch.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
let child: ChildProcess | undefined;
beforeAll(async () => {
  dir = await tempDir("glint-kvmwatch-");
});
afterEach(async () => {
  if (child && child.exitCode === null) {
    const gone = new Promise((r) => child?.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  }
  child = undefined;
});

function qemu(name: string, extra: string[]): { child: ChildProcess; socket: string } {
  const socket = path.join(dir, `${name}.sock`);
  child = spawn(
    "qemu-system-x86_64",
    [
      "-accel",
      "tcg",
      "-m",
      "64",
      "-display",
      "none",
      "-nodefaults",
      "-qmp",
      `unix:${socket},server=on,wait=off`,
      ...extra,
    ],
    { stdio: "ignore" },
  );
  return { child, socket };
}

describe("watchKvmStart", () => {
  it("sees a running guest make progress", async () => {
    const q = qemu("runs", []);
    expect(await watchKvmStart(q.child, q.socket, () => "", 20_000)).toBeUndefined();
  });

  it("reports a guest that never runs an instruction", async () => {
    const q = qemu("stuck", ["-S"]);
    expect(await watchKvmStart(q.child, q.socket, () => "", 3_000)).toMatch(
      /did not run a single instruction in 3 s/,
    );
  });

  it("reports QEMU's KVM internal error", async () => {
    const q = qemu("internal", ["-S"]);
    const stderr = "KVM internal error. Suberror: 1\nemulation failure\n";
    expect(await watchKvmStart(q.child, q.socket, () => stderr, 20_000)).toBe(
      "QEMU reports a KVM internal error",
    );
  });
});
