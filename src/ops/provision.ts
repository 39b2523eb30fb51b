/**
 * Provisioning a new VM: validating the create options into a config,
 * checking every host tool first, then creating config, disks, UEFI NVRAM
 * and TPM (the identity comes next, from the transaction engine).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError, UsageError } from "../errors.js";
import {
  createTpmState,
  installUefiVars,
  type ResolvedFirmware,
  resolveFirmware,
} from "../firmware/index.js";
import { requireTool } from "../host/tools.js";
import type { SerialFormats } from "../identity/generate.js";
import {
  checkSelfContained,
  createBlankDisk,
  createOverlay,
  flattenImage,
  imageInfo,
} from "../qemu/index.js";
import { copyFileAtomic } from "../vm/atomic.js";
import {
  type CloudProfile,
  type FirmwareKind,
  type HostnameFrom,
  type NetMode,
  type SmbiosStrings,
  type VmConfig,
  vmConfigSchema,
} from "../vm/config.js";
import { storePaths, type VmPaths } from "../vm/layout.js";
import { writeConfig } from "../vm/store.js";
import { describeZodError } from "../zod-errors.js";

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
  /** NICs on the `net` backend (1 by default); each after the first gets an extra MAC. */
  nics?: number;
  hostnameFrom?: HostnameFrom;
  /** `false`: never write the identity into the VM's disk offline (`--no-sysprep`). */
  sysprep?: boolean;
  /**
   * An identity template (`<home>/.glint/templates/NAME.json` or a predefined
   * one): every field it sets that these options leave undefined is taken
   * from it (see ops/template.ts).
   */
  template?: string;
  /** `openstack`: an OpenStack config drive and Nova's SMBIOS strings instead of a NoCloud seed. */
  cloud?: CloudProfile;
  /** The guest hostname pattern, e.g. `web-{n}`. */
  hostnamePattern?: string;
  /** This VM's MAC prefix (else the home's). */
  macPrefix?: string;
  serialFormats?: SerialFormats;
  smbios?: SmbiosStrings;
  oemStrings?: readonly string[];
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
    o.nics !== undefined ||
    o.hostnameFrom !== undefined ||
    o.sysprep !== undefined ||
    o.template !== undefined ||
    o.cloud !== undefined ||
    o.nics !== undefined
  );
}

export interface VmPlan {
  readonly config: VmConfig;
  readonly firmware: ResolvedFirmware | undefined;
  readonly base: string | undefined;
  /** Copy the base with `qemu-img convert` (it has a backing chain or a data file). */
  readonly flattenBase: boolean;
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
    nics: o.nics,
    hostname_from: o.hostnameFrom,
    sysprep: o.sysprep,
    template: o.template ?? null,
    hostname_pattern: o.hostnamePattern ?? null,
    mac_prefix: o.macPrefix ?? null,
    serial_formats: o.serialFormats ?? null,
    smbios: o.smbios,
    oem_strings: o.oemStrings,
    cloud: o.cloud,
    created_at: new Date().toISOString(),
  });
  if (!parsed.success) {
    throw new UsageError(`invalid option: ${describeZodError(parsed.error)}`);
  }
  const config = parsed.data;
  if (config.nics > 1 && config.net !== "user") {
    throw new UsageError(`more than one NIC needs --net user (got --net ${config.net})`);
  }
  if ((config.net === "bridge" || config.net === "tap") && config.net_ifname === null) {
    throw new UsageError(`--net ${config.net} needs --net-ifname NAME`);
  }
  if ((config.net === "none" || config.net === "tap") && config.nics > 1) {
    throw new UsageError(
      `--nics ${config.nics} cannot be combined with --net ${config.net} (${config.net === "tap" ? "one tap interface serves one NIC" : "no NIC"}); use --net user or bridge`,
    );
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
    // A backing file or data file would let the guest read a host file.
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
      // The user's path: a symlink to the image is followed (the image itself was checked).
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
      caDir: storePaths(paths.home).tpmCa,
      env,
    });
  }
}
