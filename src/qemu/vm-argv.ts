/**
 * A VM's complete QEMU argv: machine, memory, CPUs, firmware, disks, seed,
 * NIC, TPM, share and the identity. Every path goes through QEMU's `,,`
 * escaping.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import type { SystemIdentifiers } from "../identity/model.js";
import {
  hostnameFromPattern,
  IFNAME_RE,
  SMBIOS_FIELDS,
  type SmbiosStrings,
  type VmConfig,
} from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { escapeOptionValue, formatOptionList, type OptionItem } from "./options.js";
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

/**
 * SMBIOS strings as OpenStack Nova sets them (nova/virt/libvirt/driver.py,
 * `_get_guest_config_sysinfo`): cloud-init's ds-identify recognises the
 * product name, and the chassis asset tag.
 */
export const OPENSTACK_SMBIOS: SmbiosStrings = {
  system_manufacturer: "OpenStack Foundation",
  system_product: "OpenStack Nova",
  system_family: "Virtual Machine",
  chassis_asset_tag: "OpenStack Nova",
};

/** Every character an SMBIOS string may hold (printable ASCII); checked again here, at the edge. */
const SMBIOS_VALUE_RE = /^[\x20-\x7e]{1,255}$/;

function checkedSmbiosValue(name: string, what: string, value: string): string {
  if (typeof value !== "string" || !SMBIOS_VALUE_RE.test(value)) {
    throw new GlintError(`VM ${name}: refusing to pass ${what} ${shown(value)} to QEMU`);
  }
  return value;
}

/**
 * `-smbios type=1|2|3` options for the VM's SMBIOS strings (the OpenStack
 * profile's, overridden by the config's); commas are doubled. Glint's own
 * serials and UUID are placed after these by {@link placeIdentity}.
 */
export function smbiosArgs(config: VmConfig, name: string): string[] {
  const strings: SmbiosStrings = {
    ...(config.cloud === "openstack" ? OPENSTACK_SMBIOS : {}),
    ...(config.smbios ?? {}),
  };
  const byType = new Map<number, OptionItem[]>();
  for (const [field, spec] of Object.entries(SMBIOS_FIELDS)) {
    const value = strings[field as keyof SmbiosStrings];
    if (value === undefined) continue;
    const items = byType.get(spec.type) ?? [{ key: "type", value: String(spec.type) }];
    items.push({ key: spec.key, value: checkedSmbiosValue(name, field, value) });
    byType.set(spec.type, items);
  }
  const out: string[] = [];
  for (const type of [1, 2, 3]) {
    const items = byType.get(type);
    if (items) out.push("-smbios", formatOptionList(items));
  }
  return out;
}

/**
 * One `-smbios type=11` for the VM's extra OEM strings, placed after Glint's
 * own (which stay in the first type 11 table, /sys/firmware/dmi/entries/11-0).
 */
export function oemStringArgs(config: VmConfig, name: string): string[] {
  const oem = config.oem_strings ?? [];
  if (oem.length === 0) return [];
  return [
    "-smbios",
    formatOptionList([
      { key: "type", value: "11" },
      ...oem.map((v) => ({ key: "value", value: checkedSmbiosValue(name, "OEM string", v) })),
    ]),
  ];
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
      // One tap interface serves one NIC (create and edit refuse --nics with --net tap).
      if ((config.nics ?? 1) > 1)
        throw new GlintError(`VM ${name}: more than one NIC on one tap interface`);
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
  argv.push(...smbiosArgs(config, name));
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
      : (input.hostname ??
        (config.hostname_from === "name"
          ? config.hostname_pattern
            ? hostnameFromPattern(config.hostname_pattern, name)
            : name
          : undefined));
  const placed = placeIdentity([...argv, ...(input.extra ?? [])], input.ids, {
    ...(hostname === undefined ? {} : { hostname }),
    // OpenStack Nova gives the instance UUID as the system serial number.
    ...(config.cloud === "openstack" ? { systemSerial: input.ids.vm_uuid } : {}),
  });
  return [...placed, ...oemStringArgs(config, name)];
}
