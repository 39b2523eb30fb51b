/**
 * The one swtpm launcher of the tests: a TPM 2.0 emulator listening on
 * `<stateDir>/swtpm.sock`, optionally with a manufactured state (EK and
 * certificates from swtpm_setup). QEMU shuts swtpm down when it
 * disconnects: start one instance per QEMU process (the state directory
 * persists across instances).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { runOk } from "./exec.js";

export interface TestSwtpm {
  readonly stateDir: string;
  readonly socket: string;
  /** QEMU arguments attaching this TPM as a CRB (or TIS) device. */
  qemuArgs(device?: "tpm-crb" | "tpm-tis"): string[];
  /** Stop exactly this swtpm (if still running) and wait for it to exit. */
  stop(): Promise<void>;
}

export interface TestSwtpmOptions {
  /** Run swtpm_setup first (EK + platform certificates) unless a state exists. Default false. */
  manufacture?: boolean;
}

export async function startTestSwtpm(
  stateDir: string,
  options: TestSwtpmOptions = {},
): Promise<TestSwtpm> {
  await mkdir(stateDir, { recursive: true });
  if (options.manufacture && !existsSync(path.join(stateDir, "tpm2-00.permall"))) {
    await runOk("swtpm_setup", [
      "--tpm2",
      "--tpmstate",
      stateDir,
      "--create-ek-cert",
      "--create-platform-cert",
      "--overwrite",
      "--config",
      "/etc/swtpm_setup.conf",
    ]);
  }
  const socket = path.join(stateDir, "swtpm.sock");
  await rm(socket, { force: true });
  const child = spawn(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${stateDir}`,
      "--ctrl",
      `type=unixio,path=${socket}`,
      "--log",
      `file=${path.join(stateDir, "swtpm.log")},level=1`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  let failed: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (error) => {
      failed = error;
      resolve();
    });
  });
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (failed) throw new Error(`cannot start swtpm: ${failed.message}`);
    if (child.exitCode !== null) throw new Error(`swtpm exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`swtpm did not create ${socket}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    stateDir,
    socket,
    qemuArgs: (device = "tpm-crb") => [
      "-chardev",
      `socket,id=chrtpm,path=${socket}`,
      "-tpmdev",
      "emulator,id=tpm0,chardev=chrtpm",
      "-device",
      `${device},tpmdev=tpm0`,
    ],
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
