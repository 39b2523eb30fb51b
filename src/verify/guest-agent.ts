/**
 * What the QEMU guest agent tells about a running guest's identity: hostname,
 * /etc/machine-id, SSH host key fingerprints, the root filesystem's UUID and
 * PARTUUID (from /proc/self/mountinfo and udev's database, both read with
 * guest-file-read: no guest-exec needed), the system disk's serial and the
 * NIC MACs.
 */
import { createHash } from "node:crypto";
import type { QgaClient } from "./qga.js";

export interface AgentView {
  hostname?: string;
  machineId?: string;
  sshHostKeys: Record<string, string>;
  rootUuid?: string;
  rootPartuuid?: string;
  rootDiskSerials: string[];
  macs: string[];
  /** Why a value is missing, by value name. */
  why: Record<string, string>;
}

const SSH_KEY_TYPES = ["rsa", "ecdsa", "ed25519", "dsa"] as const;

/** `SHA256:…` fingerprint of an OpenSSH public key line, as `ssh-keygen -l` prints it. */
export function sshFingerprint(pubLine: string): string | undefined {
  const [type, blob] = pubLine.trim().split(/\s+/);
  if (type === undefined || !/^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9@.-]+)$/.test(type)) {
    return undefined;
  }
  if (blob === undefined || !/^[A-Za-z0-9+/]+=*$/.test(blob)) return undefined;
  const digest = createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** The `major:minor` of the filesystem mounted at / (the last such line of mountinfo). */
export function rootDeviceFromMountinfo(mountinfo: string): string | undefined {
  let dev: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f[4] === "/" && f[2] && /^\d+:\d+$/.test(f[2])) dev = f[2];
  }
  return dev;
}

/** `E:KEY=value` properties of a udev database entry. */
export function udevProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^E:([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], m[2]);
  }
  return out;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function readAgentView(qga: QgaClient): Promise<AgentView> {
  const view: AgentView = { sshHostKeys: {}, rootDiskSerials: [], macs: [], why: {} };
  try {
    const r = (await qga.execute("guest-get-host-name")) as { "host-name"?: string };
    if (r["host-name"] !== undefined) view.hostname = r["host-name"];
  } catch (e) {
    view.why.hostname = message(e);
  }
  try {
    view.machineId = (await qga.readFile("/etc/machine-id")).toString("utf8").trim();
  } catch (e) {
    view.why.machineId = message(e);
  }
  for (const t of SSH_KEY_TYPES) {
    const file = `/etc/ssh/ssh_host_${t}_key.pub`;
    const pub = await qga.readFile(file).catch(() => undefined);
    const fp = pub ? sshFingerprint(pub.toString("utf8")) : undefined;
    if (fp) view.sshHostKeys[t] = fp;
  }
  if (Object.keys(view.sshHostKeys).length === 0)
    view.why.sshHostKeys = "no /etc/ssh/ssh_host_*_key.pub";
  try {
    const mountinfo = (await qga.readFile("/proc/self/mountinfo")).toString("utf8");
    const dev = rootDeviceFromMountinfo(mountinfo);
    if (dev === undefined) throw new Error("no / in /proc/self/mountinfo");
    const props = udevProperties((await qga.readFile(`/run/udev/data/b${dev}`)).toString("utf8"));
    const uuid = props.get("ID_FS_UUID");
    const partuuid = props.get("ID_PART_ENTRY_UUID");
    if (uuid !== undefined) view.rootUuid = uuid;
    else view.why.rootUuid = `udev knows no filesystem UUID of block device ${dev}`;
    if (partuuid !== undefined) view.rootPartuuid = partuuid;
    else view.why.rootPartuuid = `udev knows no PARTUUID of block device ${dev}`;
  } catch (e) {
    view.why.rootUuid = message(e);
    view.why.rootPartuuid = message(e);
  }
  try {
    const fsinfo = (await qga.execute("guest-get-fsinfo")) as {
      mountpoint?: string;
      disk?: { serial?: string }[];
    }[];
    const root = fsinfo.find((f) => f.mountpoint === "/");
    for (const d of root?.disk ?? []) if (d.serial) view.rootDiskSerials.push(d.serial);
    if (view.rootDiskSerials.length === 0)
      view.why.diskSerial = "guest-get-fsinfo gave no serial for /";
  } catch (e) {
    view.why.diskSerial = message(e);
  }
  try {
    const ifaces = (await qga.execute("guest-network-get-interfaces")) as {
      name?: string;
      "hardware-address"?: string;
    }[];
    for (const i of ifaces) {
      const mac = i["hardware-address"];
      if (mac && mac !== "00:00:00:00:00:00") view.macs.push(mac);
    }
  } catch (e) {
    view.why.macs = message(e);
  }
  return view;
}
