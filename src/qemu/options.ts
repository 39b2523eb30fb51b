/**
 * Low-level QEMU command-line syntax: option lists (`key=value,key=value`
 * with `,,` as an escaped comma) and splitting an argv into options and
 * their arguments.
 *
 * QEMU takes every option as `-name value` (two argv entries) or as a bare
 * flag; `--name` is accepted as a synonym of `-name`, `-name=value` is not.
 * Whether an option takes an argument cannot be guessed from its spelling,
 * so the tables below list the options of QEMU 7.2 (probed from
 * qemu-system-x86_64 7.2: every option not in FLAG_OPTIONS takes an argument).
 */
import { GlintError } from "../errors.js";

/** One element of a QEMU option list: `key=value`, or a bare `value`. */
export interface OptionItem {
  /** `null` for a bare item (the implied first key such as the driver, or a flag). */
  readonly key: string | null;
  /** The value with `,,` escapes removed. */
  readonly value: string;
}

/** Double every comma: QEMU's escaping for a comma inside an option value. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/**
 * Split a QEMU option string into items, following QemuOpts: an item is
 * `key=value` when an `=` comes before the first comma of the item, else a
 * bare value; `,,` is a literal comma inside a value. Empty items (a leading
 * or trailing separator) are dropped.
 */
export function parseOptionList(s: string): OptionItem[] {
  const items: OptionItem[] = [];
  let p = 0;
  const readValue = (start: number): [string, number] => {
    let out = "";
    let q = start;
    while (q < s.length) {
      const c = s[q];
      if (c === ",") {
        if (s[q + 1] === ",") {
          out += ",";
          q += 2;
          continue;
        }
        break;
      }
      out += c;
      q++;
    }
    return [out, q];
  };
  while (p < s.length) {
    if (s[p] === "," && s[p + 1] !== ",") {
      p++; // empty item
      continue;
    }
    let end = p;
    while (end < s.length && s[end] !== "=" && s[end] !== ",") end++;
    if (s[end] === "=") {
      const [value, q] = readValue(end + 1);
      items.push({ key: s.slice(p, end), value });
      p = q + 1;
    } else {
      const [value, q] = readValue(p);
      items.push({ key: null, value });
      p = q + 1;
    }
  }
  return items;
}

/**
 * The inverse of {@link parseOptionList}: `parseOptionList(formatOptionList(x))`
 * deep-equals `x`. Throws a GlintError for items that cannot be written
 * unambiguously: a key containing `,` or `=`, an empty bare item, a bare
 * item whose text would read back as `key=value`, or a bare item other than
 * the first that starts with `,` (QEMU's syntax cannot express it).
 */
export function formatOptionList(items: readonly OptionItem[]): string {
  return items
    .map((item, index) => {
      if (item.key !== null) {
        if (/[,=]/.test(item.key)) {
          throw new GlintError(`QEMU option key ${JSON.stringify(item.key)} contains ',' or '='`);
        }
        return `${item.key}=${escapeOptionValue(item.value)}`;
      }
      const firstSpecial = item.value.search(/[,=]/);
      if (
        item.value === "" ||
        (firstSpecial >= 0 && item.value[firstSpecial] === "=") ||
        // ",x" after a separator would read back as an escaped comma
        (index > 0 && item.value.startsWith(","))
      ) {
        throw new GlintError(
          `QEMU option item ${JSON.stringify(item.value)} cannot be written without a key`,
        );
      }
      return escapeOptionValue(item.value);
    })
    .join(",");
}

/** The implied first value (`-device <driver>,...`, `-nic <type>,...`) or the named key. */
export function optionHead(items: readonly OptionItem[], key: string): string | undefined {
  const first = items[0];
  if (first !== undefined && first.key === null) return first.value;
  return items.find((i) => i.key === key)?.value;
}

/**
 * QEMU 7.2 options that take no argument (probed from qemu-system-x86_64
 * 7.2), plus flags of older/newer releases so that their successors are not
 * swallowed as arguments.
 */
export const FLAG_OPTIONS: ReadonlySet<string> = new Set([
  "S",
  "alt-grab",
  "async-teardown",
  "audio-help",
  "ctrl-grab",
  "curses",
  "daemonize",
  "enable-fips",
  "enable-kvm",
  "enable-sync-profile",
  "full-screen",
  "h",
  "help",
  "mem-prealloc",
  "no-acpi",
  "no-fd-bootchk",
  "no-frame",
  "no-hpet",
  "no-kvm",
  "no-quit",
  "no-reboot",
  "no-shutdown",
  "no-user-config",
  "nodefaults",
  "nodefconfig",
  "nographic",
  "old-param",
  "only-migratable",
  "portrait",
  "preconfig",
  "s",
  "sdl",
  "semihosting",
  "singlestep",
  "snapshot",
  "usb",
  "version",
  "win2k-hack",
  "xen-attach",
  "xen-domid-restrict",
]);

/** QEMU 7.2 options that take an argument (probed from qemu-system-x86_64 7.2). */
export const ARG_OPTIONS: ReadonlySet<string> = new Set([
  "D",
  "L",
  "M",
  "accel",
  "acpitable",
  "action",
  "add-fd",
  "append",
  "audio",
  "audiodev",
  "bios",
  "blockdev",
  "boot",
  "cdrom",
  "chardev",
  "chroot",
  "compat",
  "cpu",
  "d",
  "debugcon",
  "device",
  "dfilter",
  "display",
  "drive",
  "dtb",
  "dump-vmstate",
  "echr",
  "fda",
  "fdb",
  "fsdev",
  "fw_cfg",
  "g",
  "gdb",
  "global",
  "hda",
  "hdb",
  "hdc",
  "hdd",
  "icount",
  "incoming",
  "initrd",
  "iscsi",
  "k",
  "kernel",
  "loadvm",
  "m",
  "machine",
  "mem-path",
  "mon",
  "monitor",
  "msg",
  "mtdblock",
  "name",
  "net",
  "netdev",
  "nic",
  "numa",
  "object",
  "option-rom",
  "overcommit",
  "parallel",
  "pflash",
  "pidfile",
  "plugin",
  "prom-env",
  "qmp",
  "qmp-pretty",
  "qtest",
  "qtest-log",
  "readconfig",
  "rotate",
  "rtc",
  "run-with",
  "runas",
  "sandbox",
  "sd",
  "seed",
  "semihosting-config",
  "serial",
  "set",
  "smbios",
  "smp",
  "soundhw",
  "spice",
  "tb-size",
  "tpmdev",
  "trace",
  "usbdevice",
  "uuid",
  "vga",
  "virtfs",
  "vnc",
  "watchdog",
  "watchdog-action",
  "writeconfig",
  "xen-domid",
]);

/** One element of a split argv. */
export type ArgvToken =
  /** A non-option word: the binary name, or QEMU's legacy positional disk image. */
  | { readonly kind: "word"; readonly text: string }
  /** `-name` (or `--name`) and its argument, if it takes one. */
  | {
      readonly kind: "option";
      /** Name without dashes, e.g. `device`. */
      readonly name: string;
      /** The option as written, e.g. `-device` or `--device`. */
      readonly spelling: string;
      readonly arg: string | undefined;
    };

/**
 * Split an argv into options and words. Known options take an argument or
 * not as QEMU does; an unknown option takes the next entry as its argument
 * unless that starts with `-`. Throws a GlintError when a known option that
 * needs an argument is last.
 */
export function splitArgv(argv: readonly string[]): ArgvToken[] {
  const out: ArgvToken[] = [];
  for (let i = 0; i < argv.length; i++) {
    const text = argv[i] as string;
    if (typeof text !== "string") throw new GlintError("QEMU argv entries must be strings");
    if (!text.startsWith("-") || text === "-" || text === "--") {
      out.push({ kind: "word", text });
      continue;
    }
    const name = text.startsWith("--") ? text.slice(2) : text.slice(1);
    const next = argv[i + 1];
    let takesArg: boolean;
    if (FLAG_OPTIONS.has(name)) takesArg = false;
    else if (ARG_OPTIONS.has(name)) {
      if (next === undefined) throw new GlintError(`QEMU option ${text} needs an argument`);
      takesArg = true;
    } else takesArg = next !== undefined && !next.startsWith("-");
    if (takesArg) {
      out.push({ kind: "option", name, spelling: text, arg: next });
      i++;
    } else {
      out.push({ kind: "option", name, spelling: text, arg: undefined });
    }
  }
  return out;
}

/** The argv of a token list (the inverse of {@link splitArgv}). */
export function joinArgv(tokens: readonly ArgvToken[]): string[] {
  const out: string[] = [];
  for (const t of tokens) {
    if (t.kind === "word") out.push(t.text);
    else {
      out.push(t.spelling);
      if (t.arg !== undefined) out.push(t.arg);
    }
  }
  return out;
}
