/**
 * Turn a scanned ext filesystem into the list of edits sysprep makes in it:
 * references to old identifiers, machine-id, hostname, SSH host keys, network
 * and cloud-init state, random seed. The edits are applied by ext4.applyEdits.
 */
import { randomBytes } from "node:crypto";
import { type DirEntry, type ExtEdit, isDir, isReg, S_IFLNK, S_IFMT, S_IFREG } from "./ext4.js";
import {
  rewriteReferences,
  setHostsLine,
  stripInterfacesHwaddress,
  stripNmMac,
} from "./guest-files.js";
import type { FileChange, ObjectChange, SkippedItem } from "./report.js";
import { type ExtScan, entryOf, REFERENCE_FILES } from "./scan.js";
import { fingerprint, hostKeyType, type KeyFactory, type KeyType } from "./ssh-keys.js";

export interface EditResult {
  readonly edits: ExtEdit[];
  readonly files: FileChange[];
  readonly changes: ObjectChange[];
  readonly skipped: SkippedItem[];
}

const LEASE_DIRS: readonly [string, RegExp][] = [
  ["/var/lib/dhcp", /^dhclient.*\.leases?$/],
  ["/var/lib/dhclient", /\.leases?$/],
  ["/var/lib/dhcpcd", /\.lease6?$/],
  ["/var/lib/dhcpcd5", /\.lease6?$/],
  ["/var/lib/NetworkManager", /\.lease$/],
];

/** Rewrite references to old identifiers in every reference file of `scan`. */
export function referenceEdits(
  scan: ExtScan,
  subs: ReadonlyMap<string, string>,
  where: string,
  out: EditResult,
): void {
  for (const [file, data] of scan.files) {
    const isRef =
      REFERENCE_FILES.includes(file) ||
      /^\/etc\/default\/grub\.d\/.*\.cfg$/.test(file) ||
      /^(\/boot)?\/loader\/entries\/[^/]+\.conf$/.test(file);
    if (!isRef) continue;
    const r = rewriteReferences(data.toString("utf8"), subs);
    if (r.count === 0) continue;
    const text = Buffer.from(r.text, "utf8");
    if (file.endsWith("grubenv") && text.length !== data.length) continue; // fixed-size block
    if (text.length === data.length && text.equals(data)) continue;
    putLike(scan, file, text, out.edits);
    out.files.push({
      filesystem: where,
      path: file,
      action: "rewritten",
      detail: `${r.count} reference${r.count === 1 ? "" : "s"}`,
    });
  }
}

function putLike(
  scan: ExtScan,
  file: string,
  data: Buffer,
  edits: ExtEdit[],
  fallbackMode = 0o644,
): void {
  const e = entryOf(scan, file);
  edits.push({
    op: "put",
    path: file,
    data,
    mode: e ? e.mode : S_IFREG | fallbackMode,
    uid: e ? e.uid : 0,
    gid: e ? e.gid : 0,
    replace: e !== undefined,
  });
}

const isLink = (e: DirEntry) => (e.mode & S_IFMT) === S_IFLNK;

export interface OsEditInput {
  readonly scan: ExtScan;
  readonly where: string;
  readonly machineId: string;
  readonly hostname: string;
  readonly keys: KeyFactory | undefined;
  /** The text of /etc/glint/applied, when the caller has one. */
  readonly appliedRecord?: string;
}

/**
 * The OS edits of the root filesystem (everything but references and the SSH
 * host keys, which sshEdits adds once the keys are ready).
 */
export function osEdits(input: OsEditInput, out: EditResult): void {
  const { scan, where } = input;
  const text = (f: string) => scan.files.get(f)?.toString("utf8");
  // machine-id
  const mid = entryOf(scan, "/etc/machine-id");
  if (mid && !isReg(mid)) {
    out.skipped.push({
      object: "/etc/machine-id",
      reason: "not a regular file (a symlink is never followed)",
    });
  } else {
    const old = text("/etc/machine-id")?.trim() || null;
    putLike(scan, "/etc/machine-id", Buffer.from(`${input.machineId}\n`), out.edits, 0o444);
    out.changes.push({
      object: "/etc/machine-id",
      kind: "machine-id",
      source: "machine_id",
      old,
      new: input.machineId,
    });
    out.files.push({
      filesystem: where,
      path: "/etc/machine-id",
      action: mid ? "rewritten" : "created",
    });
  }
  const dbus = entryOf(scan, "/var/lib/dbus/machine-id");
  if (dbus && isReg(dbus)) {
    putLike(scan, "/var/lib/dbus/machine-id", Buffer.from(`${input.machineId}\n`), out.edits);
    out.files.push({ filesystem: where, path: "/var/lib/dbus/machine-id", action: "rewritten" });
  }
  // hostname
  const hn = entryOf(scan, "/etc/hostname");
  if (hn && !isReg(hn)) {
    out.skipped.push({
      object: "/etc/hostname",
      reason: "not a regular file (a symlink is never followed)",
    });
  } else {
    const old = text("/etc/hostname")?.trim() || null;
    putLike(scan, "/etc/hostname", Buffer.from(`${input.hostname}\n`), out.edits);
    out.changes.push({
      object: "/etc/hostname",
      kind: "hostname",
      source: "VM name",
      old,
      new: input.hostname,
    });
    out.files.push({
      filesystem: where,
      path: "/etc/hostname",
      action: hn ? "rewritten" : "created",
    });
  }
  const hosts = entryOf(scan, "/etc/hosts");
  const hostsText = text("/etc/hosts");
  if (hosts && isReg(hosts) && hostsText !== undefined) {
    const next = setHostsLine(hostsText, input.hostname);
    if (next !== hostsText) {
      putLike(scan, "/etc/hosts", Buffer.from(next), out.edits);
      out.files.push({
        filesystem: where,
        path: "/etc/hosts",
        action: "rewritten",
        detail: "127.0.1.1 line",
      });
    }
  } else if (hosts) {
    out.skipped.push({
      object: "/etc/hosts",
      reason: "not a regular file (a symlink is never followed)",
    });
  }
  appliedRecordEdits(input, out);
  networkEdits(scan, where, out);
  cloudEdits(scan, where, out);
  const seed = entryOf(scan, "/var/lib/systemd/random-seed");
  if (seed && isReg(seed)) {
    putLike(scan, "/var/lib/systemd/random-seed", randomBytes(512), out.edits);
    out.files.push({
      filesystem: where,
      path: "/var/lib/systemd/random-seed",
      action: "rewritten",
      detail: "512 fresh random bytes",
    });
  }
}

/**
 * /etc/glint/applied: the first-boot script's record of the identity it
 * applied. Written here, it tells that script the identity is in place, so it
 * keeps this boot's fresh state (SSH host keys, the DHCP lease and its DUID).
 */
function appliedRecordEdits(input: OsEditInput, out: EditResult): void {
  const { scan, where } = input;
  if (input.appliedRecord === undefined || scan.dirs.get("/etc") === undefined) return;
  const dir = entryOf(scan, "/etc/glint");
  const file = "/etc/glint/applied";
  if (dir && !isDir(dir)) {
    out.skipped.push({
      object: "/etc/glint",
      reason: "not a directory (a symlink is never followed)",
    });
    return;
  }
  const e = entryOf(scan, file);
  if (e && !isReg(e)) {
    out.skipped.push({ object: file, reason: "not a regular file (a symlink is never followed)" });
    return;
  }
  if (!dir) out.edits.push({ op: "mkdir", path: "/etc/glint" });
  putLike(scan, file, Buffer.from(input.appliedRecord), out.edits);
  out.files.push({
    filesystem: where,
    path: file,
    action: e ? "rewritten" : "created",
    detail: "the first-boot script's record: identity applied",
  });
}

/** New SSH host keys of the types the image has (waits for the keys being generated). */
export async function sshEdits(input: OsEditInput, out: EditResult): Promise<void> {
  const { scan, where } = input;
  const present: KeyType[] = [];
  for (const e of scan.dirs.get("/etc/ssh") ?? []) {
    const t = hostKeyType(e.name);
    if (t === undefined) continue;
    if (!isReg(e)) {
      out.skipped.push({ object: `/etc/ssh/${e.name}`, reason: "not a regular file" });
      continue;
    }
    present.push(t);
  }
  for (const t of present) {
    const priv = `/etc/ssh/ssh_host_${t}_key`;
    const pub = `${priv}.pub`;
    const oldPub = scan.files.get(pub)?.toString("utf8");
    const old = oldPub === undefined ? null : (fingerprint(oldPub) ?? null);
    if (input.keys === undefined) {
      out.changes.push({
        object: `SSH host key ${t}`,
        kind: "ssh-host-key",
        source: "generated",
        old,
        new: "(generated when applied)",
      });
      continue;
    }
    const key = await input.keys.get(t);
    const privEntry = entryOf(scan, priv);
    putLike(scan, priv, key.privateKey, out.edits, 0o600);
    const pubEntry = entryOf(scan, pub);
    if (pubEntry && isLink(pubEntry)) {
      out.skipped.push({ object: pub, reason: "a symlink: left as it is" });
    } else {
      putLike(scan, pub, key.publicKey, out.edits, 0o644);
    }
    if (privEntry && (privEntry.mode & 0o077) !== 0 && (privEntry.mode & 0o077) !== 0o040) {
      out.skipped.push({
        object: `${priv} mode`,
        reason: `kept the image's mode ${(privEntry.mode & 0o7777).toString(8)}`,
      });
    }
    out.changes.push({
      object: `SSH host key ${t}`,
      kind: "ssh-host-key",
      source: "generated",
      old,
      new: key.fingerprint,
    });
    out.files.push({ filesystem: where, path: priv, action: "rewritten" });
    out.files.push({ filesystem: where, path: pub, action: pubEntry ? "rewritten" : "created" });
  }
}

function networkEdits(scan: ExtScan, where: string, out: EditResult): void {
  for (const [dir, re] of LEASE_DIRS) {
    for (const e of scan.dirs.get(dir) ?? []) {
      if (!re.test(e.name) || !(isReg(e) || isLink(e))) continue;
      out.edits.push({ op: "rm", path: `${dir}/${e.name}` });
      out.files.push({
        filesystem: where,
        path: `${dir}/${e.name}`,
        action: "removed",
        detail: "DHCP lease",
      });
    }
  }
  const rules = entryOf(scan, "/etc/udev/rules.d/70-persistent-net.rules");
  if (rules && (isReg(rules) || isLink(rules))) {
    out.edits.push({ op: "rm", path: "/etc/udev/rules.d/70-persistent-net.rules" });
    out.files.push({
      filesystem: where,
      path: "/etc/udev/rules.d/70-persistent-net.rules",
      action: "removed",
    });
  }
  for (const [file, data] of scan.files) {
    const nm = file.startsWith("/etc/NetworkManager/system-connections/");
    if (!nm && file !== "/etc/network/interfaces") continue;
    const r = nm
      ? stripNmMac(data.toString("utf8"))
      : stripInterfacesHwaddress(data.toString("utf8"));
    if (r.count === 0) continue;
    putLike(scan, file, Buffer.from(r.text), out.edits);
    out.files.push({
      filesystem: where,
      path: file,
      action: "rewritten",
      detail: `${r.count} MAC line${r.count === 1 ? "" : "s"} removed`,
    });
  }
}

function cloudEdits(scan: ExtScan, where: string, out: EditResult): void {
  const inst = entryOf(scan, "/var/lib/cloud/instance");
  if (inst && !isReg(inst) && !isLink(inst)) {
    out.skipped.push({
      object: "/var/lib/cloud/instance",
      reason: "a directory, not the usual symlink: left as it is",
    });
  } else if (inst) {
    out.edits.push({ op: "rm", path: "/var/lib/cloud/instance" });
    out.files.push({
      filesystem: where,
      path: "/var/lib/cloud/instance",
      action: "removed",
      detail: "cloud-init instance state",
    });
  }
  if (scan.dirs.get("/var/lib/cloud/instances") !== undefined) {
    for (const f of scan.cloudFiles) out.edits.push({ op: "rm", path: f });
    for (const d of [...scan.cloudTree].reverse()) out.edits.push({ op: "rmdir", path: d });
    if (scan.cloudTree.length > 0 || scan.cloudFiles.length > 0) {
      out.files.push({
        filesystem: where,
        path: "/var/lib/cloud/instances/",
        action: "removed",
        detail: `${scan.cloudFiles.length} files, ${scan.cloudTree.length} directories`,
      });
    }
  }
  const iid = entryOf(scan, "/var/lib/cloud/data/instance-id");
  if (iid && (isReg(iid) || isLink(iid))) {
    out.edits.push({ op: "rm", path: "/var/lib/cloud/data/instance-id" });
    out.files.push({
      filesystem: where,
      path: "/var/lib/cloud/data/instance-id",
      action: "removed",
    });
  }
}
