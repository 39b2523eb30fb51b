/**
 * A Glint VM as a libvirt domain: the typed inputs become the domain XML that
 * carries everything `glint run` gives QEMU (see README "libvirt" for the
 * element-by-element mapping). Every identity value comes from the same
 * placement as the QEMU argv (src/qemu/place.ts), so both stay in step.
 */
import path from "node:path";
import { GlintError, UsageError } from "../errors.js";
import type { SystemIdentifiers } from "../identity/model.js";
import {
  type FirmwareFiles,
  identityPlacement,
  OPENSTACK_SMBIOS,
  SHARE_MOUNT_TAG,
} from "../qemu/index.js";
import { extraNicCount, IFNAME_RE, type SmbiosStrings, type VmConfig } from "../vm/config.js";
import { el, renderXml, type XmlElement } from "./xml.js";

/** libvirt's namespace for `<qemu:commandline>` (SMBIOS type 4 has no sysinfo element). */
export const QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0";
/** Glint's own `<metadata>` namespace: which VM and generation the domain was made from. */
export const GLINT_NS = "https://glint.invalid/libvirt/1";

/** Domain names Glint writes: what a file name and a shell can carry safely. */
export const DOMAIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

export type DomainType = "kvm" | "qemu";

export interface DomainInput {
  /** The libvirt domain name. */
  readonly name: string;
  /** The Glint VM it is made from. */
  readonly vm: string;
  readonly ids: SystemIdentifiers;
  /**
   * MACs of the NICs after the first (identifiers.json `extra_macs`); the
   * first `config.nics - 1` are used, one per NIC.
   */
  readonly extraMacs?: readonly string[];
  readonly config: VmConfig;
  readonly type: DomainType;
  /** The QEMU binary. */
  readonly emulator: string;
  /** Required iff config.firmware is uefi or uefi-secure. */
  readonly firmware?: FirmwareFiles;
  /** The system disk (qcow2), attached as the first virtio disk. */
  readonly disk?: string;
  /** The seed ISO, attached read-only as a SATA CD-ROM. */
  readonly seedIso?: string;
  /** Shared read-only over 9p with mount tag `glint`. */
  readonly shareDir?: string;
  /** The `system.hostname` credential, when the VM takes its hostname from its name. */
  readonly hostname?: string;
}

export function assertDomainName(name: string): void {
  if (!DOMAIN_NAME_RE.test(name)) {
    throw new UsageError(
      `invalid libvirt domain name ${JSON.stringify(name.slice(0, 70))}: use up to 64 letters, digits and '_.+-', starting with a letter or digit`,
      { reason: "domain-name" },
    );
  }
}

function absolute(p: string, what: string): string {
  if (p === "" || p.includes("\0")) throw new GlintError(`${what}: invalid path`);
  return path.resolve(p);
}

function entry(name: string, value: string | undefined): XmlElement | false {
  return value !== undefined && el("entry", { name }, value);
}

/** The VM's SMBIOS strings, as `glint run` gives them (the OpenStack profile's, then the config's). */
function smbiosStrings(config: VmConfig): SmbiosStrings {
  return { ...(config.cloud === "openstack" ? OPENSTACK_SMBIOS : {}), ...config.smbios };
}

function nic(config: VmConfig, vm: string, mac: string): XmlElement {
  const ifname = (): string => {
    const name = config.net_ifname;
    if (name === null || !IFNAME_RE.test(name)) {
      throw new GlintError(`VM ${vm} uses net=${config.net} but has no valid net_ifname`);
    }
    return name;
  };
  const common = [el("mac", { address: mac }), el("model", { type: "virtio" })];
  switch (config.net) {
    case "bridge":
      return el("interface", { type: "bridge" }, el("source", { bridge: ifname() }), ...common);
    case "tap":
      return el(
        "interface",
        { type: "ethernet" },
        el("target", { dev: ifname(), managed: "no" }),
        ...common,
      );
    default:
      return el("interface", { type: "user" }, ...common);
  }
}

/** The MAC of each of the VM's own NICs (`config.nics`, none for net `none`; the first is `mac_address`). */
function nicMacs(input: DomainInput, first: string): string[] {
  if (input.config.net === "none") return [];
  const extra = extraNicCount(input.config);
  const have = input.extraMacs ?? [];
  if (have.length < extra) {
    throw new GlintError(
      `VM ${input.vm} has ${extra + 1} NICs but MACs for only ${have.length + 1}: run \`glint edit ${input.vm} --nics ${extra + 1}\` to draw the missing ones`,
    );
  }
  return [first, ...have.slice(0, extra)];
}

function osElement(input: DomainInput): XmlElement {
  const fw = input.firmware;
  const { config } = input;
  if ((config.firmware === "bios") !== (fw === undefined)) {
    throw new GlintError(`VM ${input.vm} boots with ${config.firmware}: firmware files mismatch`);
  }
  return el(
    "os",
    {},
    el("type", { arch: "x86_64", machine: "q35" }, "hvm"),
    fw &&
      el(
        "loader",
        { readonly: "yes", secure: fw.secure ? "yes" : "no", type: "pflash" },
        absolute(fw.code, "firmware code"),
      ),
    fw && el("nvram", {}, absolute(fw.vars, "NVRAM")),
    el("boot", { dev: "hd" }),
    el("smbios", { mode: "sysinfo" }),
  );
}

/** The domain XML of a Glint VM. Throws a GlintError on inconsistent inputs. */
export function buildDomain(input: DomainInput): XmlElement {
  assertDomainName(input.name);
  const { ids, config } = input;
  const p = identityPlacement(ids, input.hostname);
  const macs = nicMacs(input, p.mac);
  const smbios = (type: 1 | 2 | 3 | 4): string => {
    const v = p.smbios.get(type);
    if (v === undefined) throw new Error(`no SMBIOS type ${type} serial`); // unreachable
    return v;
  };
  const strings = smbiosStrings(config);
  const sysinfo = el(
    "sysinfo",
    { type: "smbios" },
    // No `uuid` entry: libvirt gives SMBIOS type 1 the domain's <uuid> (QEMU's -uuid), and an
    // explicit one would make virt-clone, which changes <uuid> only, refuse the clone.
    el(
      "system",
      {},
      entry("manufacturer", strings.system_manufacturer),
      entry("product", strings.system_product),
      entry("version", strings.system_version),
      // OpenStack's profile: Nova's system serial is the instance UUID (as under `glint run`).
      entry("serial", config.cloud === "openstack" ? p.uuid : smbios(1)),
      entry("family", strings.system_family),
    ),
    el(
      "baseBoard",
      {},
      entry("manufacturer", strings.board_manufacturer),
      entry("serial", smbios(2)),
    ),
    el(
      "chassis",
      {},
      entry("manufacturer", strings.chassis_manufacturer),
      entry("serial", smbios(3)),
      entry("asset", strings.chassis_asset_tag ?? ids.dmi_uuid),
    ),
    // Glint's own first, then the VM's extra OEM strings (`glint run` gives those a second table).
    el("oemStrings", {}, ...[...p.oem, ...config.oem_strings].map((s) => el("entry", {}, s))),
  );
  const secure = input.firmware?.secure === true;
  const devices = el(
    "devices",
    {},
    el("emulator", {}, absolute(input.emulator, "emulator")),
    input.disk !== undefined &&
      el(
        "disk",
        { type: "file", device: "disk" },
        el("driver", { name: "qemu", type: "qcow2" }),
        el("source", { file: absolute(input.disk, "disk") }),
        el("target", { dev: "vda", bus: "virtio" }),
        el("serial", {}, p.diskSerial),
      ),
    input.seedIso !== undefined &&
      el(
        "disk",
        { type: "file", device: "cdrom" },
        el("driver", { name: "qemu", type: "raw" }),
        el("source", { file: absolute(input.seedIso, "seed ISO") }),
        el("target", { dev: "sda", bus: "sata" }),
        el("readonly"),
      ),
    input.shareDir !== undefined &&
      el(
        "filesystem",
        { type: "mount", accessmode: "squash" },
        el("source", { dir: absolute(input.shareDir, "shared directory") }),
        el("target", { dir: SHARE_MOUNT_TAG }),
        el("readonly"),
      ),
    ...macs.map((mac) => nic(config, input.vm, mac)),
    config.tpm &&
      el("tpm", { model: config.tpm_model }, el("backend", { type: "emulator", version: "2.0" })),
    el("serial", { type: "pty" }, el("target", { port: 0 })),
    el("console", { type: "pty" }, el("target", { type: "serial", port: 0 })),
  );
  return el(
    "domain",
    { type: input.type, "xmlns:qemu": QEMU_NS },
    el("name", {}, input.name),
    el("uuid", {}, p.uuid),
    el("genid", {}, p.vmgenid),
    el(
      "metadata",
      {},
      el("glint:vm", {
        "xmlns:glint": GLINT_NS,
        name: input.vm,
        generation: ids.generation,
      }),
    ),
    el("memory", { unit: "MiB" }, String(config.memory_mb)),
    el("vcpu", {}, String(config.cpus)),
    sysinfo,
    osElement(input),
    el("features", {}, el("acpi"), secure && el("smm", { state: "on" })),
    el("on_poweroff", {}, "destroy"),
    el("on_reboot", {}, "restart"),
    el("on_crash", {}, "destroy"),
    devices,
    el(
      "qemu:commandline",
      {},
      el("qemu:arg", { value: "-smbios" }),
      el("qemu:arg", { value: `type=4,serial=${smbios(4)}` }),
    ),
  );
}

/** {@link buildDomain} as a document. */
export function domainXml(input: DomainInput): string {
  return renderXml(buildDomain(input));
}
