/**
 * A VM's complete QEMU argv: machine, memory, CPUs, firmware, disks, seed,
 * NIC, TPM, share and the identity. Every path goes through QEMU's `,,`
 * escaping.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { IFNAME_RE, type VmConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { escapeOptionValue } from "./options.js";
import { placeIdentity, shown } from "./place.js";

/** UEFI firmware for one VM. */
export interface FirmwareFiles {
  /** Read-only OVMF code, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd. */
  readonly code: string;
  /** The VM's own, writable copy of the NVRAM (uefi-instance.fd). */
  readonly vars: string;
  /** Secure Boot: adds `smm=on` and the secure pflash property. */
  readonly secure: boolean;
}

export interface VmArgvInput {
  /** Guest name (`-name`); a valid VM name. */
  readonly name: string;
  readonly ids: SystemIdentifiers;
  readonly config: VmConfig;
  readonly paths: VmPaths;
  /** Required iff config.firmware is uefi or uefi-secure (and `secure` must match). */
  readonly firmware?: FirmwareFiles;
  /** swtpm's control socket; required iff config.tpm. */
  readonly tpmSocket?: string;
  /** cloud-init / Glint seed ISO, attached read-only as the second virtio disk. */
  readonly seedIso?: string;
  /** Host directory shared read-only over 9p with mount tag `glint`. */
  readonly shareDir?: string;
  /** Extra QEMU arguments; identity options in them are overridden. */
  readonly extra?: readonly string[];
  /**
   * Hostname credential: a string sets it, `null` leaves it out; by default it
   * is `name` when config.hostname_from is "name", else left out.
   */
  readonly hostname?: string | null;
  /**
   * The system disk (qcow2): a path, or `null` for none. By default
   * overlay.qcow2 when config.overlay (which must then exist), else base.qcow2
   * if it exists.
   */
  readonly disk?: string | null;
}

/** QEMU's id for the system disk drive. */
export const DISK_DRIVE_ID = "disk0";
/** 9p mount tag of the shared directory. */
export const SHARE_MOUNT_TAG = "glint";

/** An absolute, comma-escaped path for an option value. */
function optionPath(p: string, what: string): string {
  if (typeof p !== "string" || p === "" || p.includes("\0")) {
    throw new GlintError(`${what}: invalid path ${shown(p)}`);
  }
  return escapeOptionValue(path.resolve(p));
}

function chooseDisk(input: VmArgvInput): string | undefined {
  if (input.disk === null) return undefined;
  if (input.disk !== undefined) return input.disk;
  if (input.config.overlay) {
    if (!existsSync(input.paths.overlay)) {
      throw new GlintError(
        `${input.paths.overlay} is missing although VM ${input.name} uses an overlay`,
        {
          code: "not-found",
          details: { vm: input.name, file: input.paths.overlay, reason: "overlay" },
        },
      );
    }
    return input.paths.overlay;
  }
  return existsSync(input.paths.base) ? input.paths.base : undefined;
}

function nicArgs(config: VmConfig, name: string): string[] {
  const needIf = (): string => {
    const ifname = config.net_ifname;
    if (ifname === null || ifname === undefined) {
      throw new GlintError(
        `VM ${name} uses net=${config.net} but has no net_ifname (the ${config.net === "bridge" ? "bridge" : "tap interface"} name)`,
      );
    }
    if (!IFNAME_RE.test(ifname)) {
      throw new GlintError(`VM ${name}: net_ifname ${shown(ifname)} is not an interface name`);
    }
    return ifname;
  };
  let nic: string;
  switch (config.net) {
    case "user":
      nic = "user,model=virtio-net-pci";
      break;
    case "bridge":
      nic = `bridge,br=${needIf()},model=virtio-net-pci`;
      break;
    case "tap":
      nic = `tap,ifname=${needIf()},script=no,downscript=no,model=virtio-net-pci`;
      break;
    case "none":
      return ["-nic", "none"];
    default:
      throw new GlintError(`VM ${name}: unknown net mode ${shown(config.net)}`);
  }
  // Every NIC gets its own MAC when the identity is placed (extra_macs).
  return Array.from({ length: config.nics ?? 1 }, () => ["-nic", nic]).flat();
}

/**
 * The complete QEMU argv of a VM, without the binary name: machine, memory,
 * CPUs, name, firmware, system disk, seed ISO, NIC, TPM, share, `extra`, and
 * the identity (extra's identity options are overridden).
 * Throws a GlintError when the inputs disagree (e.g. UEFI config but no
 * firmware, TPM config but no socket, bridge/tap without net_ifname).
 */
export function buildVmArgv(input: VmArgvInput): string[] {
  const { name, config } = input;
  const fw = input.firmware;
  if (config.firmware === "bios" && fw !== undefined) {
    throw new GlintError(`VM ${name} boots with BIOS, but UEFI firmware files were given`);
  }
  if (config.firmware !== "bios" && fw === undefined) {
    throw new GlintError(`VM ${name} boots with ${config.firmware}: OVMF code and vars are needed`);
  }
  if (fw !== undefined && fw.secure !== (config.firmware === "uefi-secure")) {
    throw new GlintError(
      `VM ${name} boots with ${config.firmware}, but the firmware given is ${fw.secure ? "" : "not "}Secure Boot firmware`,
    );
  }
  if (config.tpm && input.tpmSocket === undefined) {
    throw new GlintError(`VM ${name} has a TPM: the swtpm socket is needed`);
  }
  if (!config.tpm && input.tpmSocket !== undefined) {
    throw new GlintError(`VM ${name} has no TPM, but a swtpm socket was given`);
  }
  if (!Number.isInteger(config.memory_mb) || config.memory_mb < 16) {
    throw new GlintError(`VM ${name}: memory_mb must be an integer ≥ 16`);
  }
  if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > 255) {
    throw new GlintError(`VM ${name}: cpus must be an integer from 1 to 255`);
  }

  const argv: string[] = ["-machine", fw?.secure ? "q35,smm=on" : "q35"];
  if (fw?.secure) argv.push("-global", "driver=cfi.pflash01,property=secure,value=on");
  argv.push("-m", `${config.memory_mb}M`, "-smp", String(config.cpus), "-name", name);
  if (fw !== undefined) {
    argv.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${optionPath(fw.code, "firmware code")}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${optionPath(fw.vars, "firmware vars")}`,
    );
  }
  const disk = chooseDisk(input);
  if (disk !== undefined) {
    argv.push(
      "-drive",
      `if=none,id=${DISK_DRIVE_ID},file=${optionPath(disk, "disk")},format=qcow2`,
      "-device",
      `virtio-blk-pci,drive=${DISK_DRIVE_ID}`,
    );
  }
  if (input.seedIso !== undefined) {
    // if=virtio devices are created after all -device options, so the
    // system disk above stays the first virtio disk (vda).
    argv.push(
      "-drive",
      `file=${optionPath(input.seedIso, "seed ISO")},if=virtio,format=raw,readonly=on`,
    );
  }
  argv.push(...nicArgs(config, name));
  if (input.tpmSocket !== undefined) {
    if (config.tpm_model !== "tpm-crb" && config.tpm_model !== "tpm-tis") {
      throw new GlintError(`VM ${name}: unknown TPM model ${shown(config.tpm_model)}`);
    }
    argv.push(
      "-chardev",
      `socket,id=chrtpm,path=${optionPath(input.tpmSocket, "TPM socket")}`,
      "-tpmdev",
      "emulator,id=tpm0,chardev=chrtpm",
      "-device",
      `${config.tpm_model},tpmdev=tpm0`,
    );
  }
  if (input.shareDir !== undefined) {
    argv.push(
      "-fsdev",
      `local,id=glintfs,path=${optionPath(input.shareDir, "shared directory")},security_model=none,readonly=on`,
      "-device",
      `virtio-9p-pci,fsdev=glintfs,mount_tag=${SHARE_MOUNT_TAG}`,
    );
  }
  const hostname =
    input.hostname === null
      ? undefined
      : (input.hostname ?? (config.hostname_from === "name" ? name : undefined));
  return placeIdentity([...argv, ...(input.extra ?? [])], input.ids, {
    ...(hostname === undefined ? {} : { hostname }),
  });
}
