/**
 * The NICs of a QEMU argv: `-nic <type>` (other than `none`), `-net nic`
 * (whose MAC is `macaddr=`) and `-device` of a network driver (its backend,
 * `-netdev`, has no MAC). Shared by identity placement (the first NIC gets
 * `mac_address`, the later ones `extra_macs` in order) and by the checks the
 * CLI makes before a run (how many NICs need a MAC, which MACs are given).
 */
import {
  type ArgvToken,
  formatOptionList,
  type OptionItem,
  optionHead,
  parseOptionList,
  splitArgv,
} from "./options.js";

/** Drivers treated as network cards (for `mac=`). */
export const NIC_DRIVER_RE =
  /^(virtio-net|e1000|rtl8139|ne2k|pcnet|vmxnet|i825|i8280|usb-net|tulip|igb|sungem|lan9118|smc91c111)/;

/** Set `key` to `value` (first occurrence kept in place, others removed, else appended). */
export function setItem(
  arg: string,
  items: readonly OptionItem[],
  key: string,
  value: string,
): string {
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

export type DeviceForm =
  | { readonly form: "json"; readonly object: Record<string, unknown>; readonly driver: string }
  | { readonly form: "opts"; readonly items: OptionItem[]; readonly driver: string };

export function parseDevice(arg: string): DeviceForm | undefined {
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

export function setDeviceProperty(
  arg: string,
  dev: DeviceForm,
  key: string,
  value: string,
): string {
  if (dev.form === "opts") return setItem(arg, dev.items, key, value);
  if (dev.object[key] === value) return arg;
  return JSON.stringify({ ...dev.object, [key]: value });
}

/** One NIC option of an argv: its current MAC, and how to set one. */
export interface NicOption {
  /** The MAC given in the option, if any. */
  readonly mac: string | undefined;
  /** The option's argument with `mac` set. */
  readonly withMac: (mac: string) => string;
}

/** The NIC a token defines, or undefined when it defines none. */
export function nicOf(token: ArgvToken): NicOption | undefined {
  if (token.kind === "word" || token.arg === undefined) return undefined;
  const arg = token.arg;
  switch (token.name) {
    case "nic": {
      const items = parseOptionList(arg);
      const type = optionHead(items, "type");
      if (type === undefined || type === "none" || type === "help") return undefined;
      return {
        mac: items.find((i) => i.key === "mac")?.value,
        withMac: (mac) => setItem(arg, items, "mac", mac),
      };
    }
    case "net": {
      const items = parseOptionList(arg);
      if (optionHead(items, "type") !== "nic") return undefined;
      return {
        mac: items.find((i) => i.key === "macaddr")?.value,
        withMac: (mac) => setItem(arg, items, "macaddr", mac),
      };
    }
    case "device": {
      const dev = parseDevice(arg);
      if (dev === undefined || !NIC_DRIVER_RE.test(dev.driver)) return undefined;
      const mac =
        dev.form === "opts" ? dev.items.find((i) => i.key === "mac")?.value : dev.object.mac;
      return {
        mac: typeof mac === "string" ? mac : undefined,
        withMac: (m) => setDeviceProperty(arg, dev, "mac", m),
      };
    }
    default:
      return undefined;
  }
}

/** The MAC given to each NIC of `argv`, in order (`undefined`: none given). */
export function nicMacs(argv: readonly string[]): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (const token of splitArgv(argv)) {
    const nic = nicOf(token);
    if (nic) out.push(nic.mac);
  }
  return out;
}
