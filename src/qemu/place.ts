/**
 * Placing an identity into any QEMU argv, idempotently.
 *
 * Identities are validated once, when they are parsed or drawn (the
 * SystemIdentifiers type); the public `applyIdentifiersToQemuCommand` checks
 * them again because it is an edge that callers may reach with any object.
 * Every value goes through QEMU's `,,` escaping.
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
 *   network driver, or `macaddr=` on `-net nic`); a later NIC without a MAC
 *   gets the `extra_macs` entry of its position (the second NIC the first
 *   one), and one with a MAC is left alone; no NIC is added when there is none;
 * - `serial=` on the first `-device virtio-blk-*` (the system disk); none is added;
 * - `-device vmgenid`: one is appended with `guid=` (keeping the other
 *   properties, such as `id=`, of the first existing one); all others are removed.
 * `-netdev` is never touched (QEMU's backends have no MAC). `-device` given as
 * JSON is handled like the `key=value` form. The identity options are
 * appended at the end, after everything else, so `apply(apply(x))` equals
 * `apply(x)`.
 */
import { GlintError } from "../errors.js";
import {
  extraMacsOf,
  IDENTIFIER_FIELDS,
  type IdentifierField,
  type SystemIdentifiers,
  systemIdentifiersSchema,
} from "../identity/model.js";
import { HOSTNAME_CREDENTIAL, IDENTITY_MAPPING, OWNED_OEM_PREFIXES } from "./mapping.js";
import { nicOf, parseDevice, setDeviceProperty } from "./nics.js";
import {
  type ArgvToken,
  formatOptionList,
  joinArgv,
  type OptionItem,
  parseOptionList,
  splitArgv,
} from "./options.js";

export { NIC_DRIVER_RE, nicMacs } from "./nics.js";
export {
  escapeOptionValue,
  formatOptionList,
  type OptionItem,
  parseOptionList,
} from "./options.js";

/** Hostnames: dot-separated labels of letters, digits and '-', ≤ 253 characters. */
export const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*$/;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Drivers treated as the system disk (for `serial=`). */
export const DISK_DRIVER_RE = /^virtio-blk(-pci|-pci-transitional|-pci-non-transitional|-device)?$/;

export function shown(value: unknown): string {
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

/** Every value of an identity as QEMU receives it (also what the libvirt domain XML carries). */
export interface Placement {
  uuid: string;
  mac: string;
  diskSerial: string;
  vmgenid: string;
  smbios: Map<1 | 2 | 3 | 4, string>;
  oem: string[];
}

function planPlacement(ids: SystemIdentifiers, hostname: string | undefined): Placement {
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

/**
 * The identity's values as placed (validated, derived: serials, disk serial,
 * OEM strings in order, with the hostname credential when given).
 */
export function identityPlacement(ids: SystemIdentifiers, hostname?: string): Placement {
  assertPlaceableIdentifiers(ids);
  return planPlacement(ids, hostname);
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

export interface ApplyIdentifiersOptions {
  /** Adds the `io.systemd.credential:system.hostname=` OEM string. */
  readonly hostname?: string;
  /**
   * The SMBIOS system serial (type 1) instead of `GLINT-<smbios_uuid>`: the
   * OpenStack profile gives the VM UUID, as Nova does. Must be a UUID.
   */
  readonly systemSerial?: string;
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
  assertPlaceableIdentifiers(ids);
  return placeIdentity(baseArgv, ids, options);
}

/** {@link applyIdentifiersToQemuCommand} for an identity that the parser or a policy produced. */
export function placeIdentity(
  baseArgv: readonly string[],
  ids: SystemIdentifiers,
  options: ApplyIdentifiersOptions = {},
): string[] {
  const plan = planPlacement(ids, options.hostname);
  if (options.systemSerial !== undefined) {
    if (!UUID_RE.test(options.systemSerial)) {
      throw new GlintError(`refusing to pass system serial ${shown(options.systemSerial)} to QEMU`);
    }
    plan.smbios.set(1, options.systemSerial);
  }
  const out: ArgvToken[] = [];
  const extraMacs = extraMacsOf(ids);
  let nics = 0;
  let diskDone = false;
  let vmgenid: string | undefined;
  for (const token of splitArgv(baseArgv)) {
    if (token.kind === "word" || token.arg === undefined) {
      out.push(token);
      continue;
    }
    const arg = token.arg;
    const withArg = (next: string): ArgvToken => ({ ...token, arg: next });
    const nic = nicOf(token);
    if (nic !== undefined) {
      // The first NIC gets the VM's MAC; a later one without a MAC its extra MAC.
      const mac = nics === 0 ? plan.mac : nic.mac === undefined ? extraMacs[nics - 1] : undefined;
      out.push(mac === undefined ? token : withArg(nic.withMac(mac)));
      nics++;
      continue;
    }
    switch (token.name) {
      case "uuid":
        break;
      case "smbios": {
        const kept = stripSmbios(arg);
        if (kept !== null) out.push(withArg(kept));
        break;
      }
      case "device": {
        const dev = parseDevice(arg);
        if (dev === undefined) out.push(token);
        else if (dev.driver === "vmgenid") {
          // Moved to the end (with its other properties) like the rest of the identity.
          vmgenid ??= setDeviceProperty(arg, dev, "guid", plan.vmgenid);
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
