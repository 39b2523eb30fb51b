/**
 * VM lifecycle beyond identifiers: creating a VM with disks and firmware,
 * building its QEMU command, and running it with its swtpm sidecar.
 * Used by UuidManager; callers hold the VM's lock.
 */
import { spawn } from "node:child_process";
import { accessSync, existsSync, promises as fs, constants as fsConstants } from "node:fs";
import { constants as osConstants } from "node:os";
import path from "node:path";
import { GlintError, UsageError } from "./errors.js";
import {
  createTpmState,
  installUefiVars,
  type ResolvedFirmware,
  resolveFirmware,
  startSwtpm,
} from "./firmware/index.js";
import { createPostInstallScript, hostnameFor, writeSeed } from "./guest/index.js";
import type { SystemIdentifiers } from "./identity/model.js";
import {
  buildVmArgv,
  checkSelfContained,
  createBlankDisk,
  createOverlay,
  type FirmwareFiles,
  flattenImage,
  imageInfo,
  requireTool,
} from "./qemu/index.js";
import { tpmCaDir } from "./steps.js";
import { copyFileAtomic } from "./vm/atomic.js";
import { type FirmwareKind, type NetMode, type VmConfig, vmConfigSchema } from "./vm/config.js";
import type { VmPaths } from "./vm/layout.js";
import { writeConfig } from "./vm/store.js";

export interface DiskAndFirmwareOptions {
  /** Base image (qcow2) copied into the VM as base.qcow2, or linked with `linkBase`. */
  base?: string;
  /** Symlink base.qcow2 to the shared `base` instead of copying it. */
  linkBase?: boolean;
  /**
   * Accept a base with a backing chain (or an external data file) by copying
   * it flattened into one self-contained image (`qemu-img convert`).
   */
  flattenBase?: boolean;
  /** Create overlay.qcow2 on top of base.qcow2. */
  overlay?: boolean;
  /** Size of a blank base.qcow2 when there is no base image, e.g. "8G". */
  diskSize?: string;
  firmware?: FirmwareKind;
  tpm?: boolean;
  tpmModel?: "tpm-crb" | "tpm-tis";
  net?: NetMode;
  /** Bridge (net=bridge) or tap interface (net=tap). */
  netIfname?: string;
  memoryMb?: number;
  cpus?: number;
  hostnameFrom?: "name" | "machine-id";
}

/** Whether any option that shapes disks or firmware was given. */
export function hasProvisioningOptions(o: DiskAndFirmwareOptions): boolean {
  return (
    o.base !== undefined ||
    o.linkBase !== undefined ||
    o.flattenBase !== undefined ||
    o.overlay !== undefined ||
    o.diskSize !== undefined ||
    o.firmware !== undefined ||
    o.tpm !== undefined ||
    o.tpmModel !== undefined ||
    o.net !== undefined ||
    o.netIfname !== undefined ||
    o.memoryMb !== undefined ||
    o.cpus !== undefined ||
    o.hostnameFrom !== undefined
  );
}

export interface VmPlan {
  config: VmConfig;
  firmware: ResolvedFirmware | undefined;
  base: string | undefined;
  /** Copy the base with `qemu-img convert` (it has a backing chain or a data file). */
  flattenBase: boolean;
}

/** Validate the options into a config, checking every host tool before anything is created. */
export async function planVm(o: DiskAndFirmwareOptions, env: NodeJS.ProcessEnv): Promise<VmPlan> {
  if (o.overlay && o.base === undefined) throw new UsageError("--overlay needs --base IMG");
  if (o.linkBase && o.base === undefined) throw new UsageError("--link-base needs --base IMG");
  if (o.flattenBase && o.base === undefined) {
    throw new UsageError("--flatten-base needs --base IMG");
  }
  if (o.flattenBase && o.linkBase) {
    throw new UsageError(
      "--flatten-base makes a private flattened copy of the base; it cannot be combined with --link-base",
    );
  }
  if (o.linkBase && !o.overlay) {
    throw new UsageError(
      "--link-base shares the base image with other VMs; add --overlay so that this VM never writes to it",
    );
  }
  if (o.diskSize !== undefined && o.base !== undefined) {
    throw new UsageError("--disk-size makes a blank disk; it cannot be combined with --base");
  }
  const parsed = vmConfigSchema.safeParse({
    firmware: o.firmware,
    tpm: o.tpm,
    tpm_model: o.tpmModel,
    overlay: o.overlay,
    disk_size: o.diskSize ?? null,
    net: o.net,
    net_ifname: o.netIfname ?? null,
    memory_mb: o.memoryMb,
    cpus: o.cpus,
    hostname_from: o.hostnameFrom,
    created_at: new Date().toISOString(),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `invalid option ${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
    );
  }
  const config = parsed.data;
  if ((config.net === "bridge" || config.net === "tap") && config.net_ifname === null) {
    throw new UsageError(`--net ${config.net} needs --net-ifname NAME`);
  }
  let base: string | undefined;
  let flattenBase = false;
  if (o.base !== undefined) {
    base = path.resolve(o.base);
    const st = await fs.stat(base).catch(() => undefined);
    if (!st?.isFile()) throw new GlintError(`base image ${base} does not exist or is not a file`);
    const info = await imageInfo(base, { env });
    if (info.format !== "qcow2") {
      throw new GlintError(
        `base image ${base} is ${info.format}, not qcow2: convert it with \`qemu-img convert -O qcow2 ${base} base.qcow2\``,
      );
    }
    flattenBase = await checkSelfContained(base, info, Boolean(o.flattenBase), { env });
    config.base = { source: base, linked: Boolean(o.linkBase) };
  }
  if (o.overlay || o.diskSize !== undefined) await requireTool("qemu-img", env);
  const firmware =
    config.firmware === "bios" ? undefined : await resolveFirmware(config.firmware, { env });
  if (firmware) config.firmware_code = firmware.code;
  if (config.tpm) {
    await requireTool("swtpm_setup", env);
    await requireTool("swtpm", env);
  }
  await requireTool("genisoimage", env);
  return { config, firmware, base, flattenBase };
}

/** Create config, disks, NVRAM and TPM of a new VM (identifiers come next). */
export async function provisionVm(
  paths: VmPaths,
  plan: VmPlan,
  env: NodeJS.ProcessEnv,
  onProgress?: (message: string) => void,
): Promise<void> {
  const { config, firmware, base } = plan;
  await fs.mkdir(paths.dir, { recursive: true });
  await writeConfig(paths, config);
  if (base !== undefined) {
    if (config.base?.linked) {
      await fs.symlink(base, paths.base);
    } else if (plan.flattenBase) {
      onProgress?.("copying the base image, flattened");
      await flattenImage(base, paths.base, { env });
    } else {
      onProgress?.("copying the base image");
      await copyFileAtomic(base, paths.base, { followSymlinks: true });
    }
  }
  if (config.disk_size !== null) {
    onProgress?.("creating a blank disk");
    await createBlankDisk(paths.base, config.disk_size, { env });
  }
  if (config.overlay) {
    onProgress?.("creating the overlay");
    await createOverlay(paths.base, paths.overlay, { env });
  }
  if (firmware) {
    onProgress?.("installing fresh UEFI variables");
    await installUefiVars(firmware, paths.uefiSeed, paths.uefiInstance);
  }
  if (config.tpm) {
    onProgress?.("manufacturing the TPM");
    await createTpmState(paths.tpm, {
      vmName: paths.name,
      caDir: tpmCaDir(path.dirname(paths.dir)),
      env,
    });
  }
}

/** The firmware files QEMU maps for this VM, or undefined for BIOS. Reads only. */
async function vmFirmware(
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
    throw new GlintError(
      `${paths.uefiSeed} is missing: the VM's UEFI variables are gone; recreate them with \`glint nuke ${paths.name}\``,
    );
  }
  await copyFileAtomic(paths.uefiSeed, paths.uefiInstance);
}

/** Where `glint run` asks swtpm to put its control socket. */
export function tpmSocketPath(paths: VmPaths): string {
  return path.join(paths.dir, "swtpm.sock");
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
    ...(config.tpm ? { tpmSocket: input.tpmSocket ?? tpmSocketPath(paths) } : {}),
    seedIso: paths.seedIso,
    hostname: hostnameFor(paths.name, ids, config.hostname_from),
    shareDir: paths.shared,
    extra: [...acceleratorArgs(input.extra ?? []), ...(input.extra ?? [])],
  });
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
}

/** Start QEMU in the foreground (stdio inherited) with the swtpm sidecar; resolves to QEMU's exit code. */
export async function runVm(
  paths: VmPaths,
  config: VmConfig,
  ids: SystemIdentifiers,
  options: RunOptions,
  env: NodeJS.ProcessEnv,
): Promise<RunResult> {
  const qemu = await requireTool("qemu-system-x86_64", env);
  if (options.dryRun) {
    const argv = await vmArgv({ paths, config, ids, extra: options.extra ?? [], env });
    if (!config.tpm) return { argv: [qemu, ...argv], exitCode: 0 };
    // swtpm's option lists split at every comma and have no escape for one,
    // and a socket path has at most 107 bytes: when the absolute paths do not
    // fit, the command runs in the VM directory with relative ones.
    const socket = tpmSocketPath(paths);
    const relative =
      paths.tpm.includes(",") || socket.includes(",") || Buffer.byteLength(socket) > 107;
    const sidecar = [
      await requireTool("swtpm", env),
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${relative ? path.basename(paths.tpm) : paths.tpm}`,
      "--ctrl",
      `type=unixio,path=${relative ? path.basename(socket) : socket}`,
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
  if (!existsSync(paths.seedIso) || !existsSync(paths.script)) {
    await writeSeed(paths, ids, { hostnameFrom: config.hostname_from, env });
    await createPostInstallScript(paths, ids, { hostnameFrom: config.hostname_from });
  }
  const tpm = config.tpm ? await startSwtpm(paths.tpm, tpmSocketPath(paths), { env }) : undefined;
  try {
    const argv = await vmArgv({
      paths,
      config,
      ids,
      extra: options.extra ?? [],
      ...(tpm ? { tpmSocket: tpm.socket } : {}),
      env,
    });
    const child = spawn(qemu, argv, { stdio: "inherit", env });
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
      const exitCode = await new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (code, signal) =>
          resolve(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1)),
        );
      });
      return { argv: [qemu, ...argv], exitCode };
    } finally {
      if (killer) clearTimeout(killer);
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      process.off("SIGHUP", onHup);
    }
  } finally {
    await tpm?.stop();
  }
}
