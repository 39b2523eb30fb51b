/**
 * Running a VM: building its QEMU command line and running QEMU in the
 * foreground with its swtpm sidecar. QEMU writes its pid to `<vm>/qemu.pid`,
 * so that every command can tell that the VM still runs even if the
 * `glint run` that started it was killed (see src/vm/running.ts).
 * Callers hold the VM's lock.
 */
import { spawn } from "node:child_process";
import { accessSync, existsSync, promises as fs, constants as fsConstants } from "node:fs";
import { constants as osConstants } from "node:os";
import { GlintError, UsageError } from "../errors.js";
import { resolveFirmware, startSwtpm } from "../firmware/index.js";
import {
  createPostInstallScript,
  guestOptionsOf,
  hostnameFor,
  seedFileOf,
  writeSeed,
} from "../guest/index.js";
import { requireTool } from "../host/tools.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { buildVmArgv, type FirmwareFiles } from "../qemu/index.js";
import { escapeOptionValue } from "../qemu/options.js";
import { copyFileAtomic } from "../vm/atomic.js";
import type { VmConfig } from "../vm/config.js";
import { VM_FILES, type VmPaths } from "../vm/layout.js";
import { watchKvmStart } from "./kvm-watch.js";

/** The firmware files QEMU (or libvirt) maps for this VM, or undefined for BIOS. Reads only. */
export async function vmFirmware(
  config: VmConfig,
  paths: VmPaths,
  env: NodeJS.ProcessEnv,
): Promise<FirmwareFiles | undefined> {
  if (config.firmware === "bios") return undefined;
  const secure = config.firmware === "uefi-secure";
  // The code that matches the VM's NVRAM, as chosen at create time.
  if (config.firmware_code !== null && existsSync(config.firmware_code)) {
    return { code: config.firmware_code, vars: paths.uefiInstance, secure };
  }
  const fw = await resolveFirmware(config.firmware, { env });
  return { code: fw.code, vars: paths.uefiInstance, secure: fw.secureBoot };
}

/** Before a boot: a missing NVRAM instance is restored from the VM's seed (the caller holds the lock). */
async function ensureUefiInstance(config: VmConfig, paths: VmPaths): Promise<void> {
  if (config.firmware === "bios" || existsSync(paths.uefiInstance)) return;
  if (!existsSync(paths.uefiSeed)) {
    throw new GlintError(`${paths.uefiSeed} is missing: the VM's UEFI variables are gone`, {
      code: "not-found",
      details: { vm: paths.name, file: paths.uefiSeed, reason: "uefi-seed" },
    });
  }
  await copyFileAtomic(paths.uefiSeed, paths.uefiInstance);
}

/** Whether `argv` already chooses an accelerator. */
function choosesAccelerator(argv: readonly string[]): boolean {
  return argv.some(
    (a, i) =>
      a === "-accel" ||
      a === "-enable-kvm" ||
      ((a === "-machine" || a === "-M") && /(^|,)accel=/.test(argv[i + 1] ?? "")),
  );
}

/**
 * KVM when this user can open /dev/kvm, else TCG (software emulation). Extra
 * arguments that choose an accelerator themselves win.
 */
export function acceleratorArgs(extra: readonly string[], kvmDevice = "/dev/kvm"): string[] {
  if (choosesAccelerator(extra)) return [];
  try {
    accessSync(kvmDevice, fsConstants.R_OK | fsConstants.W_OK);
    return ["-accel", "kvm"];
  } catch {
    return ["-accel", "tcg"];
  }
}

export interface VmCommandInput {
  paths: VmPaths;
  config: VmConfig;
  ids: SystemIdentifiers;
  extra?: readonly string[];
  tpmSocket?: string;
  env: NodeJS.ProcessEnv;
}

/** The full QEMU argv (without the binary) of a VM. */
export async function vmArgv(input: VmCommandInput): Promise<string[]> {
  const { paths, config, ids, env } = input;
  const firmware = await vmFirmware(config, paths, env);
  return buildVmArgv({
    name: paths.name,
    ids,
    config,
    paths,
    ...(firmware ? { firmware } : {}),
    ...(config.tpm ? { tpmSocket: input.tpmSocket ?? paths.swtpmSocket } : {}),
    seedIso: seedFileOf(paths, config.cloud),
    hostname: hostnameFor(paths.name, ids, config.hostname_from, config.hostname_pattern),
    shareDir: paths.shared,
    extra: [...acceleratorArgs(input.extra ?? []), ...(input.extra ?? [])],
  });
}

const MAX_SOCKET_PATH_BYTES = 107;

/** The guest agent's virtio-serial port name, as qemu-guest-agent looks for it. */
export const GUEST_AGENT_PORT = "org.qemu.guest_agent.0";

/**
 * The control channels `glint run` adds, both UNIX sockets in the VM
 * directory that QEMU listens on: QMP (`qmp.sock`) and the QEMU guest
 * agent's virtio-serial channel (`qga.sock`). `glint verify` uses them.
 * A UNIX socket path holds at most 107 bytes: in a VM directory whose path is
 * longer, the VM runs without them (and `glint verify` says so).
 */
export function controlArgs(paths: VmPaths): string[] {
  const longest = Math.max(Buffer.byteLength(paths.qmpSocket), Buffer.byteLength(paths.qgaSocket));
  if (longest > MAX_SOCKET_PATH_BYTES) return [];
  return [
    "-qmp",
    `unix:${escapeOptionValue(paths.qmpSocket)},server=on,wait=off`,
    "-chardev",
    `socket,path=${escapeOptionValue(paths.qgaSocket)},server=on,wait=off,id=glintqga`,
    "-device",
    "virtio-serial-pci,id=glintserial",
    "-device",
    `virtserialport,bus=glintserial.0,chardev=glintqga,name=${GUEST_AGENT_PORT}`,
  ];
}

export interface RunResult {
  /** The QEMU command, binary first. */
  argv: string[];
  exitCode: number;
  /** With `dryRun` on a VM with a TPM: the swtpm command to start first. */
  sidecar?: string[];
  /** The directory to run `sidecar` in, when its paths are relative to it. */
  sidecarCwd?: string;
}

export interface RunOptions {
  extra?: readonly string[];
  dryRun?: boolean;
  /** Where `--dry-run` prints the command. */
  print?: (line: string) => void;
  /**
   * When QEMU runs with KVM: watch this many ms for the guest to make
   * progress, and fail naming `--accel tcg` if KVM does not work (see
   * kvm-watch.ts).
   */
  kvmWatchMs?: number;
}

/** Whether `argv` runs with KVM and starts the guest at once (not -S, not -incoming). */
function startsWithKvm(argv: readonly string[]): boolean {
  const kvm = argv.some(
    (a, i) =>
      (a === "-accel" && /^kvm(,|$)/.test(argv[i + 1] ?? "")) ||
      a === "-enable-kvm" ||
      ((a === "-machine" || a === "-M") && /(^|,)accel=kvm/.test(argv[i + 1] ?? "")),
  );
  return kvm && !argv.includes("-S") && !argv.includes("-incoming");
}

/** Start QEMU in the foreground (stdio inherited) with the swtpm sidecar; resolves to QEMU's exit code. */
export async function runVm(
  paths: VmPaths,
  config: VmConfig,
  ids: SystemIdentifiers,
  options: RunOptions,
  env: NodeJS.ProcessEnv,
): Promise<RunResult> {
  const extra = options.extra ?? [];
  if (extra.some((a) => a === "-daemonize" || a === "--daemonize")) {
    throw new UsageError(
      "glint run keeps QEMU in the foreground, so that the VM stays locked for QEMU's whole life; -daemonize is not supported",
      { vm: paths.name, reason: "daemonize" },
    );
  }
  const qemu = await requireTool("qemu-system-x86_64", env);
  // QEMU's pidfile tells every other command that the VM runs, even if this process dies;
  // the QMP and guest agent sockets are for `glint verify`.
  const tail = [...controlArgs(paths), "-pidfile", paths.pidfile];
  if (options.dryRun) {
    const argv = [...(await vmArgv({ paths, config, ids, extra, env })), ...tail];
    if (!config.tpm) return { argv: [qemu, ...argv], exitCode: 0 };
    // swtpm's option lists split at every comma and have no escape for one,
    // and a socket path has at most 107 bytes: when the absolute paths do not
    // fit, the command runs in the VM directory with relative ones.
    const socket = paths.swtpmSocket;
    const relative =
      paths.tpm.includes(",") || socket.includes(",") || Buffer.byteLength(socket) > 107;
    const sidecar = [
      await requireTool("swtpm", env),
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${relative ? VM_FILES.tpm : paths.tpm}`,
      "--ctrl",
      `type=unixio,path=${relative ? VM_FILES.swtpmSocket : socket}`,
      "--terminate",
    ];
    return {
      argv: [qemu, ...argv],
      exitCode: 0,
      sidecar,
      ...(relative ? { sidecarCwd: paths.dir } : {}),
    };
  }
  // Files a boot needs that an older Glint, or a person, may have removed.
  await ensureUefiInstance(config, paths);
  if (
    !existsSync(seedFileOf(paths, config.cloud)) ||
    !existsSync(paths.script) ||
    !existsSync(paths.identityEnv)
  ) {
    await writeSeed(paths, ids, { ...guestOptionsOf(config), env });
    await createPostInstallScript(paths, ids, guestOptionsOf(config));
  }
  const tpm = config.tpm ? await startSwtpm(paths.tpm, paths.swtpmSocket, { env }) : undefined;
  try {
    const argv = [
      ...(await vmArgv({
        paths,
        config,
        ids,
        extra,
        ...(tpm ? { tpmSocket: tpm.socket } : {}),
        env,
      })),
      ...tail,
    ];
    const watch = options.kvmWatchMs !== undefined && startsWithKvm(argv);
    // `glint start` gives QEMU its monitor socket already (at the same path).
    if (watch && !argv.includes("-qmp"))
      argv.push("-qmp", `unix:${paths.qmpSocket},server=on,wait=off`);
    // While watching KVM, QEMU's stderr passes through us (to spot "KVM internal error").
    const child = spawn(qemu, argv, {
      stdio: ["inherit", "inherit", watch ? "pipe" : "inherit"],
      env,
    });
    let stderrText = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      process.stderr.write(chunk);
      if (stderrText.length < 65_536) stderrText += chunk.toString("utf8");
    });
    const kvmFailure =
      watch && options.kvmWatchMs !== undefined
        ? watchKvmStart(child, paths.qmpSocket, () => stderrText, options.kvmWatchMs)
        : Promise.resolve(undefined);
    // QEMU owns the terminal while it runs: Ctrl-C reaches it directly; we only forward TERM/HUP.
    // QEMU gets 10 s to shut down cleanly after a forwarded signal, then it is killed.
    let killer: NodeJS.Timeout | undefined;
    const forward = (signal: NodeJS.Signals) => () => {
      child.kill(signal);
      killer ??= setTimeout(() => child.kill("SIGKILL"), 10_000);
    };
    const onInt = () => {};
    const onTerm = forward("SIGTERM");
    const onHup = forward("SIGHUP");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    process.on("SIGHUP", onHup);
    try {
      const exited = new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (code, signal) =>
          resolve(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1)),
        );
      });
      const failure = await kvmFailure;
      if (failure !== undefined) {
        child.kill("SIGKILL");
        await exited.catch(() => 1);
        throw new GlintError(
          `KVM does not work on this host: ${failure}; run with \`--accel tcg\` (software emulation, slower)`,
          { code: "unsupported", details: { vm: paths.name, reason: "kvm" } },
        );
      }
      const exitCode = await exited;
      return { argv: [qemu, ...argv], exitCode };
    } finally {
      await fs.rm(paths.pidfile, { force: true });
      await fs.rm(paths.qmpSocket, { force: true });
      await fs.rm(paths.qgaSocket, { force: true });
      if (killer) clearTimeout(killer);
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      process.off("SIGHUP", onHup);
    }
  } finally {
    await tpm?.stop();
  }
}
