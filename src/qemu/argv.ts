/**
 * QEMU command lines: placing an identity into any argv (idempotently) and
 * building a VM's full argv.
 *
 * Every identifier is checked against its strict format (src/identity) before
 * it is written, and every value and path goes through QEMU's `,,` escaping.
 *
 * What `applyIdentifiersToQemuCommand` owns, and therefore replaces:
 * - every `-uuid`;
 * - in `-smbios type=1`: `serial` and `uuid`; in types 2, 3 and 4: `serial`
 *   (other fields such as `manufacturer` are kept; an option left with only
 *   `type=` is dropped);
 * - in `-smbios type=11`: values starting with `glint.`,
 *   `io.systemd.credential:system.machine_id=` or
 *   `io.systemd.credential:system.hostname=` (and their `.binary:` forms); other
 *   OEM strings and `path=` entries are kept (an option left with none is dropped);
 * - `mac=` on the first NIC (`-nic <type>` other than `none`, `-device` of a
 *   network driver, or `macaddr=` on `-net nic`); later NICs are left alone,
 *   and no NIC is added when there is none;
 * - `serial=` on the first `-device virtio-blk-*` (the system disk); none is added;
 * - `-device vmgenid`: one is appended with `guid=` (keeping the other
 *   properties, such as `id=`, of the first existing one); all others are removed.
 * `-netdev` is never touched (QEMU's backends have no MAC). `-device` given as
 * JSON is handled like the `key=value` form. The identity options are
 * appended at the end, after everything else, so `apply(apply(x))` equals
 * `apply(x)`.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import {
  IDENTIFIER_FIELDS,
  type IdentifierField,
  type SystemIdentifiers,
  systemIdentifiersSchema,
} from "../identity/model.js";
import { IFNAME_RE, type VmConfig } from "../vm/config.js";
import { assertVmName, type VmPaths } from "../vm/layout.js";
import { HOSTNAME_CREDENTIAL, IDENTITY_MAPPING, OWNED_OEM_PREFIXES } from "./mapping.js";
import {
  type ArgvToken,
  escapeOptionValue,
  formatOptionList,
  joinArgv,
  type OptionItem,
  optionHead,
  parseOptionList,
  splitArgv,
} from "./options.js";

export {
  escapeOptionValue,
  formatOptionList,
  type OptionItem,
  parseOptionList,
} from "./options.js";

/** Hostnames: dot-separated labels of letters, digits and '-', ≤ 253 characters. */
export const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*$/;

/** Drivers treated as network cards (for `mac=`). */
export const NIC_DRIVER_RE =
  /^(virtio-net|e1000|rtl8139|ne2k|pcnet|vmxnet|i825|i8280|usb-net|tulip|igb|sungem|lan9118|smc91c111)/;
/** Drivers treated as the system disk (for `serial=`). */
export const DISK_DRIVER_RE = /^virtio-blk(-pci|-pci-transitional|-pci-non-transitional|-device)?$/;

function shown(value: unknown): string {
  if (typeof value !== "string") return JSON.stringify(value) ?? String(value);
  return JSON.stringify(value.length > 48 ? `${value.slice(0, 48)}…` : value);
}

/**
 * Check every identifier field against its strict format; throws a GlintError
 * naming the first bad field. Only identifier fields are checked (not the
 * timestamps), since only they reach QEMU.
 */
export function assertPlaceableIdentifiers(ids: SystemIdentifiers): void {
  if (ids === null || typeof ids !== "object") {
    throw new GlintError("identifiers for QEMU: expected an object");
  }
  const record = ids as unknown as Record<string, unknown>;
  for (const field of IDENTIFIER_FIELDS) {
    const value = record[field];
    const r = systemIdentifiersSchema.shape[field].safeParse(value);
    if (!r.success) {
      throw new GlintError(
        `refusing to pass ${field} to QEMU: it ${r.error.issues[0]?.message ?? "is invalid"} (got ${shown(value)})`,
      );
    }
  }
}

function assertHostname(hostname: string): void {
  if (typeof hostname !== "string" || !HOSTNAME_RE.test(hostname)) {
    throw new GlintError(
      `refusing to pass hostname ${shown(hostname)} to QEMU: use labels of letters, digits and '-' separated by dots`,
    );
  }
}

/** Printable ASCII without spaces or commas: what every placed value must be after validation. */
const PLACED_RE = /^[\x21-\x2b\x2d-\x7e]+$/;

interface Placement {
  uuid: string;
  mac: string;
  diskSerial: string;
  vmgenid: string;
  smbios: Map<1 | 2 | 3 | 4, string>;
  oem: string[];
}

function planPlacement(ids: SystemIdentifiers, hostname: string | undefined): Placement {
  assertPlaceableIdentifiers(ids);
  if (hostname !== undefined) assertHostname(hostname);
  const plan: Placement = {
    uuid: "",
    mac: "",
    diskSerial: "",
    vmgenid: "",
    smbios: new Map(),
    oem: [],
  };
  for (const row of IDENTITY_MAPPING) {
    const value = ids[row.field as IdentifierField];
    for (const target of row.targets) {
      const placed = target.derive(value);
      if (!PLACED_RE.test(placed)) {
        // Unreachable with validated identifiers; kept as a last line of defence.
        throw new GlintError(`refusing to pass ${row.field} to QEMU: ${shown(placed)}`);
      }
      const p = target.placement;
      switch (p.kind) {
        case "uuid":
          plan.uuid = placed;
          break;
        case "nic-mac":
          plan.mac = placed;
          break;
        case "disk-serial":
          plan.diskSerial = placed;
          break;
        case "vmgenid":
          plan.vmgenid = placed;
          break;
        case "smbios-serial":
          plan.smbios.set(p.type, placed);
          break;
        case "oem-string":
          plan.oem.push(placed);
          if (row.field === "machine_id" && hostname !== undefined) {
            plan.oem.push(`${HOSTNAME_CREDENTIAL}${hostname}`);
          }
          break;
      }
    }
  }
  return plan;
}

/** QEMU's number syntax for option values (strtoull with base 0). */
function parseQemuNumber(text: string): number | undefined {
  if (/^0x[0-9a-f]+$/i.test(text)) return Number.parseInt(text.slice(2), 16);
  if (/^0[0-7]*$/.test(text)) return Number.parseInt(text, 8);
  if (/^[1-9][0-9]*$/.test(text)) return Number.parseInt(text, 10);
  return undefined;
}

/** SMBIOS fields Glint owns, per type. */
const OWNED_SMBIOS_KEYS: Readonly<Record<number, readonly string[]>> = {
  1: ["serial", "uuid"],
  2: ["serial"],
  3: ["serial"],
  4: ["serial"],
};

/** A `-smbios` argument without Glint's fields; `null` when nothing else is left. */
function stripSmbios(arg: string): string | null {
  const items = parseOptionList(arg);
  const typeText = items.find((i) => i.key === "type")?.value;
  const type = typeText === undefined ? undefined : parseQemuNumber(typeText);
  if (type === undefined) return arg;
  let kept: OptionItem[];
  if (type === 11) {
    kept = items.filter(
      (i) => !(i.key === "value" && OWNED_OEM_PREFIXES.some((p) => i.value.startsWith(p))),
    );
    if (!kept.some((i) => i.key === "value" || i.key === "path")) return null;
  } else {
    const owned = OWNED_SMBIOS_KEYS[type];
    if (owned === undefined) return arg;
    kept = items.filter((i) => i.key === null || !owned.includes(i.key));
    if (!kept.some((i) => i.key !== "type")) return null;
  }
  return kept.length === items.length ? arg : formatOptionList(kept);
}

/** Set `key` to `value` (first occurrence kept in place, others removed, else appended). */
function setItem(arg: string, items: readonly OptionItem[], key: string, value: string): string {
  const out: OptionItem[] = [];
  let done = false;
  for (const item of items) {
    if (item.key !== key) out.push(item);
    else if (!done) {
      out.push({ key, value });
      done = true;
    }
  }
  if (!done) out.push({ key, value });
  const unchanged =
    out.length === items.length &&
    out.every((o, i) => o.key === items[i]?.key && o.value === items[i]?.value);
  return unchanged ? arg : formatOptionList(out);
}

type DeviceForm =
  | { readonly form: "json"; readonly object: Record<string, unknown>; readonly driver: string }
  | { readonly form: "opts"; readonly items: OptionItem[]; readonly driver: string };

function parseDevice(arg: string): DeviceForm | undefined {
  if (arg.trimStart().startsWith("{")) {
    try {
      const object: unknown = JSON.parse(arg);
      if (object !== null && typeof object === "object" && !Array.isArray(object)) {
        const driver = (object as Record<string, unknown>).driver;
        if (typeof driver === "string") {
          return { form: "json", object: object as Record<string, unknown>, driver };
        }
      }
    } catch {
      // not JSON QEMU would accept either; leave it alone
    }
    return undefined;
  }
  const items = parseOptionList(arg);
  const driver = optionHead(items, "driver");
  return driver === undefined ? undefined : { form: "opts", items, driver };
}

function setDeviceProperty(arg: string, dev: DeviceForm, key: string, value: string): string {
  if (dev.form === "opts") return setItem(arg, dev.items, key, value);
  if (dev.object[key] === value) return arg;
  return JSON.stringify({ ...dev.object, [key]: value });
}

export interface ApplyIdentifiersOptions {
  /** Adds the `io.systemd.credential:system.hostname=` OEM string. */
  readonly hostname?: string;
}

/**
 * `baseArgv` with the identity `ids` placed as described in the module
 * comment: Glint's previous identity options are removed or replaced, the
 * rest of the command line keeps its order (a leading binary name stays
 * first), and the identity options are appended. Idempotent.
 * Throws a GlintError if an identifier or the hostname is malformed, or if the
 * argv ends with an option that lacks its argument.
 */
export function applyIdentifiersToQemuCommand(
  baseArgv: readonly string[],
  ids: SystemIdentifiers,
  options: ApplyIdentifiersOptions = {},
): string[] {
  const plan = planPlacement(ids, options.hostname);
  const out: ArgvToken[] = [];
  let nicDone = false;
  let diskDone = false;
  let vmgenid: string | undefined;
  for (const token of splitArgv(baseArgv)) {
    if (token.kind === "word" || token.arg === undefined) {
      out.push(token);
      continue;
    }
    const arg = token.arg;
    const withArg = (next: string): ArgvToken => ({ ...token, arg: next });
    switch (token.name) {
      case "uuid":
        break;
      case "smbios": {
        const kept = stripSmbios(arg);
        if (kept !== null) out.push(withArg(kept));
        break;
      }
      case "nic": {
        const items = parseOptionList(arg);
        const type = optionHead(items, "type");
        if (!nicDone && type !== undefined && type !== "none" && type !== "help") {
          out.push(withArg(setItem(arg, items, "mac", plan.mac)));
          nicDone = true;
        } else out.push(token);
        break;
      }
      case "net": {
        const items = parseOptionList(arg);
        if (!nicDone && optionHead(items, "type") === "nic") {
          out.push(withArg(setItem(arg, items, "macaddr", plan.mac)));
          nicDone = true;
        } else out.push(token);
        break;
      }
      case "device": {
        const dev = parseDevice(arg);
        if (dev === undefined) out.push(token);
        else if (dev.driver === "vmgenid") {
          // Moved to the end (with its other properties) like the rest of the identity.
          vmgenid ??= setDeviceProperty(arg, dev, "guid", plan.vmgenid);
        } else if (!nicDone && NIC_DRIVER_RE.test(dev.driver)) {
          out.push(withArg(setDeviceProperty(arg, dev, "mac", plan.mac)));
          nicDone = true;
        } else if (!diskDone && DISK_DRIVER_RE.test(dev.driver)) {
          out.push(withArg(setDeviceProperty(arg, dev, "serial", plan.diskSerial)));
          diskDone = true;
        } else out.push(token);
        break;
      }
      default:
        out.push(token);
    }
  }
  const tail: string[] = ["-uuid", plan.uuid];
  for (const type of [1, 2, 3, 4] as const) {
    const serial = plan.smbios.get(type);
    if (serial !== undefined) {
      tail.push(
        "-smbios",
        formatOptionList([
          { key: "type", value: String(type) },
          { key: "serial", value: serial },
        ]),
      );
    }
  }
  tail.push(
    "-smbios",
    formatOptionList([
      { key: "type", value: "11" },
      ...plan.oem.map((value) => ({ key: "value", value })),
    ]),
  );
  tail.push(
    "-device",
    vmgenid ??
      formatOptionList([
        { key: null, value: "vmgenid" },
        { key: "guid", value: plan.vmgenid },
      ]),
  );
  return [...joinArgv(out), ...tail];
}

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
  switch (config.net) {
    case "user":
      return ["-nic", "user,model=virtio-net-pci"];
    case "bridge":
      return ["-nic", `bridge,br=${needIf()},model=virtio-net-pci`];
    case "tap":
      return ["-nic", `tap,ifname=${needIf()},script=no,downscript=no,model=virtio-net-pci`];
    case "none":
      return ["-nic", "none"];
    default:
      throw new GlintError(`VM ${name}: unknown net mode ${shown(config.net)}`);
  }
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
  assertVmName(name);
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
  return applyIdentifiersToQemuCommand([...argv, ...(input.extra ?? [])], input.ids, {
    ...(hostname === undefined ? {} : { hostname }),
  });
}

/** A POSIX-shell-quoted command line, for printing (never executed by Glint). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map(shellWord).join(" ");
}

/** One word for a POSIX shell: bare when only safe characters, else single-quoted. */
export function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
