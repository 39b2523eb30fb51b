/**
 * Read what sysprep needs from the ext filesystems of a disk: directory
 * listings (to know which files exist, their modes and owners) and the files
 * to rewrite, in a few batched debugfs runs per filesystem.
 */
import path from "node:path";
import { type DebugfsOptions, type DirEntry, isDir, isReg, listAndRead } from "./ext4.js";
import { extDevice, type Part } from "./layout.js";

/** Directories listed on every ext filesystem (root or /boot). */
export const SCAN_DIRS = [
  "/",
  "/etc",
  "/etc/ssh",
  "/etc/default",
  "/etc/glint",
  "/etc/default/grub.d",
  "/etc/initramfs-tools/conf.d",
  "/etc/kernel",
  "/etc/network",
  "/etc/NetworkManager/system-connections",
  "/etc/udev/rules.d",
  "/boot",
  "/boot/grub",
  "/boot/grub2",
  "/boot/loader/entries",
  "/grub",
  "/grub2",
  "/loader/entries",
  "/var/lib/dbus",
  "/var/lib/dhcp",
  "/var/lib/dhclient",
  "/var/lib/dhcpcd",
  "/var/lib/dhcpcd5",
  "/var/lib/NetworkManager",
  "/var/lib/cloud",
  "/var/lib/cloud/instances",
  "/var/lib/cloud/data",
  "/var/lib/systemd",
] as const;

/** Files whose references to old identifiers are rewritten (plus the patterns below). */
export const REFERENCE_FILES = [
  "/etc/fstab",
  "/etc/crypttab",
  "/etc/default/grub",
  "/etc/initramfs-tools/conf.d/resume",
  "/etc/kernel/cmdline",
  "/boot/grub/grub.cfg",
  "/boot/grub/grubenv",
  "/boot/grub2/grub.cfg",
  "/boot/grub2/grubenv",
  "/grub/grub.cfg",
  "/grub/grubenv",
  "/grub2/grub.cfg",
  "/grub2/grubenv",
];

/** Reference files found by listing: `*.cfg` in grub.d, `*.conf` loader entries. */
const REFERENCE_DIRS: readonly [string, RegExp][] = [
  ["/etc/default/grub.d", /\.cfg$/],
  ["/boot/loader/entries", /\.conf$/],
  ["/loader/entries", /\.conf$/],
];

/** Other files read for the OS edits (when they are regular files). */
export const OS_FILES = [
  "/etc/machine-id",
  "/var/lib/dbus/machine-id",
  "/etc/hostname",
  "/etc/hosts",
  "/etc/network/interfaces",
];

export interface ExtScan {
  readonly part: Part;
  /** Listing of each directory (undefined: missing or not a directory). */
  readonly dirs: ReadonlyMap<string, readonly DirEntry[] | undefined>;
  /** Contents of the regular files read. */
  readonly files: ReadonlyMap<string, Buffer>;
  /** Every directory under /var/lib/cloud/instances, deepest last. */
  readonly cloudTree: readonly string[];
  /** Every non-directory entry under /var/lib/cloud/instances. */
  readonly cloudFiles: readonly string[];
}

/** The entry for absolute `file`, if its directory was listed. */
export function entryOf(scan: Pick<ExtScan, "dirs">, file: string): DirEntry | undefined {
  const dir = path.posix.dirname(file);
  return scan.dirs.get(dir)?.find((e) => e.name === path.posix.basename(file));
}

/** Whether `/etc/fstab` is a regular file on this filesystem. */
export function hasFstab(scan: Pick<ExtScan, "dirs">): boolean {
  const e = entryOf(scan, "/etc/fstab");
  return e !== undefined && isReg(e);
}

/** Regular files to read from a listed filesystem. */
export function filesToRead(dirs: ReadonlyMap<string, readonly DirEntry[] | undefined>): string[] {
  const scan = { dirs };
  const wanted = new Set<string>();
  for (const f of [...REFERENCE_FILES, ...OS_FILES]) {
    const e = entryOf(scan, f);
    if (e && isReg(e)) wanted.add(f);
  }
  for (const [dir, re] of REFERENCE_DIRS) {
    for (const e of dirs.get(dir) ?? [])
      if (isReg(e) && re.test(e.name)) wanted.add(`${dir}/${e.name}`);
  }
  for (const e of dirs.get("/etc/NetworkManager/system-connections") ?? []) {
    if (isReg(e)) wanted.add(`/etc/NetworkManager/system-connections/${e.name}`);
  }
  for (const e of dirs.get("/etc/ssh") ?? []) {
    if (isReg(e) && /^ssh_host_\w+_key\.pub$/.test(e.name)) wanted.add(`/etc/ssh/${e.name}`);
  }
  return [...wanted];
}

/**
 * Scan one ext filesystem, all read-only: one debugfs run lists SCAN_DIRS and
 * copies out the files of fixed names (kept only if the listing shows them as
 * regular files); a second copies the files found by listing and lists the
 * cloud-init instance directories; deeper instance directories take one more
 * run per level.
 */
export async function scanExt(part: Part, o: DebugfsOptions): Promise<ExtScan> {
  const dev = extDevice(part);
  const fixed = [...REFERENCE_FILES, ...OS_FILES];
  const first = await listAndRead(dev, SCAN_DIRS, fixed, o);
  const dirs = new Map(first.dirs);
  const wanted = filesToRead(dirs);
  const files = new Map<string, Buffer>();
  for (const f of wanted) {
    const data = first.files.get(f);
    if (data !== undefined) files.set(f, data);
  }
  const rest = wanted.filter((f) => !fixed.includes(f));
  const cloudTree: string[] = [];
  const cloudFiles: string[] = [];
  let level = (dirs.get("/var/lib/cloud/instances") ?? []).map((e) => ({
    path: `/var/lib/cloud/instances/${e.name}`,
    e,
  }));
  for (let depth = 0; depth < 32; depth++) {
    const subdirs = level.filter((x) => isDir(x.e)).map((x) => x.path);
    for (const x of level) if (!isDir(x.e)) cloudFiles.push(x.path);
    cloudTree.push(...subdirs);
    const toRead = depth === 0 ? rest : [];
    if (subdirs.length === 0 && toRead.length === 0) break;
    const got = await listAndRead(dev, subdirs, toRead, o);
    for (const [f, data] of got.files) files.set(f, data);
    level = [];
    for (const [d, entries] of got.dirs) {
      for (const e of entries ?? []) level.push({ path: `${d}/${e.name}`, e });
    }
    if (level.length === 0) break;
  }
  return { part, dirs, files, cloudTree, cloudFiles };
}
