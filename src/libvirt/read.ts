/**
 * What `glint libvirt import` reads from a domain XML: the identity values it
 * carries (in Glint's formats, so they can be adopted), and the VM shape
 * (firmware, NVRAM, TPM, NICs, disks, memory, CPUs).
 */
import { glintError } from "../errors.js";
import {
  EXTRA_MACS,
  IDENTIFIER_FIELDS,
  type IdentifierField,
  systemIdentifiersSchema,
  type ValueField,
} from "../identity/model.js";
import { GLINT_OEM_PREFIX, MACHINE_ID_CREDENTIAL } from "../qemu/index.js";
import { childOf, childrenOf, parseXml, textOf, type XmlNode } from "./tree.js";

export interface DomainNic {
  /** libvirt's interface type: user, network, bridge, ethernet, … */
  readonly type: string;
  readonly mac: string | undefined;
  /** The bridge (type bridge) or tap device (type ethernet). */
  readonly ifname: string | undefined;
}

export interface DomainDisk {
  readonly device: string;
  readonly path: string | undefined;
  readonly format: string | undefined;
  readonly serial: string | undefined;
}

export interface DomainFacts {
  readonly name: string;
  readonly uuid: string | undefined;
  readonly type: string | undefined;
  /** Every identity value found, in its raw form, keyed by the Glint field it would fill. */
  readonly found: Partial<Record<IdentifierField, string>>;
  readonly nics: readonly DomainNic[];
  readonly disks: readonly DomainDisk[];
  readonly loader: { readonly path: string; readonly secure: boolean } | undefined;
  /** UEFI firmware: an explicit loader, or `<os firmware='efi'>` (libvirt picks the loader). */
  readonly efi: { readonly secure: boolean } | undefined;
  readonly nvram: { readonly path: string; readonly template: string | undefined } | undefined;
  readonly tpm: { readonly model: string; readonly backend: string } | undefined;
  readonly memoryMb: number | undefined;
  readonly cpus: number | undefined;
}

const UNIT_MIB: Record<string, number> = {
  b: 1 / 1048576,
  bytes: 1 / 1048576,
  k: 1 / 1024,
  kib: 1 / 1024,
  kb: 1000 / 1048576,
  m: 1,
  mib: 1,
  mb: 1e6 / 1048576,
  g: 1024,
  gib: 1024,
  gb: 1e9 / 1048576,
  t: 1048576,
  tib: 1048576,
};

function memoryMb(el: XmlNode | undefined): number | undefined {
  const value = Number(textOf(el));
  if (el === undefined || !Number.isFinite(value) || value <= 0) return undefined;
  const factor = UNIT_MIB[(el.attrs.unit ?? "KiB").toLowerCase()];
  return factor === undefined ? undefined : Math.floor(value * factor);
}

/** `GLINT-<32 hex>` back to a UUID. */
function uuidFromSerial(serial: string | undefined): string | undefined {
  const m = /^GLINT-([0-9A-F]{32})$/.exec(serial ?? "");
  const h = m?.[1]?.toLowerCase();
  if (h === undefined) return undefined;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function entryOf(block: XmlNode | undefined, name: string): string | undefined {
  const e = childrenOf(block, "entry").find((x) => x.attrs.name === name);
  return textOf(e);
}

/** `-smbios type=4,serial=…` from `<qemu:commandline>`. */
function processorSerial(domain: XmlNode): string | undefined {
  const args = childrenOf(childOf(domain, "qemu:commandline"), "qemu:arg").map(
    (a) => a.attrs.value ?? "",
  );
  for (let i = 0; i + 1 < args.length; i++) {
    if (args[i] !== "-smbios") continue;
    const m = /^type=4,(?:.*,)?serial=([^,]+)/.exec(args[i + 1] ?? "");
    if (m?.[1] !== undefined) return m[1];
  }
  return undefined;
}

/** The facts of a domain XML document (`what` names it in errors). */
export function readDomain(xml: string, what: string): DomainFacts {
  const domain = parseXml(xml, what);
  if (domain.name !== "domain") {
    throw glintError("invalid-file", `${what} is not a libvirt domain (root <${domain.name}>)`, {
      reason: "xml",
    });
  }
  const name = textOf(childOf(domain, "name"));
  if (!name) throw glintError("invalid-file", `${what} has no <name>`, { reason: "xml" });
  const found: Partial<Record<IdentifierField, string>> = {};
  const set = (field: IdentifierField, value: string | undefined) => {
    if (value !== undefined && value !== "" && found[field] === undefined) found[field] = value;
  };
  const sysinfo = childrenOf(domain, "sysinfo").find((s) => s.attrs.type === "smbios");
  for (const oem of childrenOf(childOf(sysinfo, "oemStrings"), "entry")) {
    const text = textOf(oem) ?? "";
    if (text.startsWith(MACHINE_ID_CREDENTIAL)) {
      set("machine_id", text.slice(MACHINE_ID_CREDENTIAL.length));
    } else if (text.startsWith(GLINT_OEM_PREFIX)) {
      const eq = text.indexOf("=");
      const field = text.slice(GLINT_OEM_PREFIX.length, eq) as IdentifierField;
      if (eq > 0 && IDENTIFIER_FIELDS.includes(field)) set(field, text.slice(eq + 1));
    }
  }
  set("vm_uuid", textOf(childOf(domain, "uuid")));
  set("vm_generation_id", textOf(childOf(domain, "genid")));
  set("smbios_uuid", uuidFromSerial(entryOf(childOf(sysinfo, "system"), "serial")));
  set("dmi_uuid", uuidFromSerial(entryOf(childOf(sysinfo, "chassis"), "serial")));
  set("motherboard_serial", entryOf(childOf(sysinfo, "baseBoard"), "serial"));
  set("cpu_serial", processorSerial(domain));
  const devices = childOf(domain, "devices");
  const nics = childrenOf(devices, "interface").map((i) => ({
    type: i.attrs.type ?? "",
    mac: childOf(i, "mac")?.attrs.address?.toLowerCase(),
    ifname: childOf(i, "source")?.attrs.bridge ?? childOf(i, "target")?.attrs.dev,
  }));
  set("mac_address", nics[0]?.mac);
  const disks = childrenOf(devices, "disk").map((d) => ({
    device: d.attrs.device ?? "disk",
    path: childOf(d, "source")?.attrs.file ?? childOf(d, "source")?.attrs.dev,
    format: childOf(d, "driver")?.attrs.type,
    serial: textOf(childOf(d, "serial")),
  }));
  const os = childOf(domain, "os");
  const loaderEl = childOf(os, "loader");
  const loaderPath = textOf(loaderEl);
  const nvramEl = childOf(os, "nvram");
  const nvramPath = textOf(nvramEl);
  const tpmEl = childOf(devices, "tpm");
  const secureFeature = childrenOf(childOf(os, "firmware"), "feature").some(
    (f) => f.attrs.name === "secure-boot" && f.attrs.enabled === "yes",
  );
  const efi =
    loaderPath || os?.attrs.firmware === "efi"
      ? { secure: loaderEl?.attrs.secure === "yes" || secureFeature }
      : undefined;
  const vcpus = Number(textOf(childOf(domain, "vcpu")));
  return {
    name,
    uuid: textOf(childOf(domain, "uuid")),
    type: domain.attrs.type,
    found,
    nics,
    disks,
    loader: loaderPath ? { path: loaderPath, secure: loaderEl?.attrs.secure === "yes" } : undefined,
    efi,
    nvram: nvramPath ? { path: nvramPath, template: nvramEl?.attrs.template } : undefined,
    tpm: tpmEl
      ? {
          model: tpmEl.attrs.model ?? "tpm-tis",
          backend: childOf(tpmEl, "backend")?.attrs.type ?? "",
        }
      : undefined,
    memoryMb: memoryMb(childOf(domain, "memory")),
    cpus: Number.isInteger(vcpus) && vcpus > 0 ? vcpus : undefined,
  };
}

/** A domain value not adopted (not in Glint's format, or repeated), drawn fresh instead. */
export interface Rejected {
  readonly field: ValueField;
  readonly value: string;
  readonly why: string;
}

/** Split found values into those in Glint's formats (adoptable) and the others (drawn fresh). */
export function adoptable(found: Partial<Record<IdentifierField, string>>): {
  preset: Partial<Record<IdentifierField, string>>;
  rejected: Rejected[];
} {
  const preset: Partial<Record<IdentifierField, string>> = {};
  const rejected: Rejected[] = [];
  for (const field of IDENTIFIER_FIELDS) {
    const value = found[field];
    if (value === undefined) continue;
    const r = systemIdentifiersSchema.shape[field].safeParse(value);
    if (r.success) preset[field] = r.data as string;
    else rejected.push({ field, value, why: r.error.issues[0]?.message ?? "invalid" });
  }
  return { preset, rejected };
}

/**
 * The MACs of the NICs after the first, by position, as `extra_macs` to
 * adopt: `undefined` where a NIC has no MAC, one not in Glint's format, or
 * one that an earlier NIC of the domain has already (those are drawn fresh,
 * the last two reported).
 */
export function adoptableExtraMacs(nics: readonly DomainNic[]): {
  extra: (string | undefined)[];
  rejected: Rejected[];
} {
  const seen = new Set<string>();
  const extra: (string | undefined)[] = [];
  const rejected: Rejected[] = [];
  nics.forEach((nic, i) => {
    const mac = nic.mac;
    if (mac === undefined || mac === "") {
      if (i > 0) extra.push(undefined);
      return;
    }
    if (i === 0) {
      seen.add(mac);
      return;
    }
    const r = systemIdentifiersSchema.shape.mac_address.safeParse(mac);
    if (!r.success) {
      rejected.push({
        field: EXTRA_MACS,
        value: mac,
        why: r.error.issues[0]?.message ?? "invalid",
      });
      extra.push(undefined);
    } else if (seen.has(mac)) {
      rejected.push({ field: EXTRA_MACS, value: mac, why: `repeats the MAC of an earlier NIC` });
      extra.push(undefined);
    } else {
      seen.add(mac);
      extra.push(mac);
    }
  });
  return { extra, rejected };
}
