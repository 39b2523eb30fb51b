/**
 * A fake Debian guest root for the guest-side tests, and running the
 * rendered post-install script under a given shell against it.
 * External tools run through execFile/spawn with argv arrays only.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import { type RunResult, run, runOk } from "./exec.js";
import { freshIds } from "./identity.js";

async function put(file: string, content: string, mode = 0o644): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
  await fs.chmod(file, mode);
}

/** The values the fake guest starts with (its "base image" identity). */
export interface FakeGuest {
  root: string;
  oldMachineId: string;
  oldMac: string;
  oldRootUuid: string;
  oldBootUuid: string;
  oldSwapUuid: string;
  efiUuid: string;
  fstab: string;
  grubCfg: string;
  defaultGrub: string;
  hosts: string;
  /**
   * Names of files the script must never create in its working directory:
   * NM profile file names carry `$(touch …)` and backtick payloads.
   */
  pwned: string[];
}

export const SSH_KEY_TYPES = ["rsa", "ecdsa", "ed25519"] as const;

/**
 * A fake Debian guest root: old machine-id (dbus copy as a plain file), SSH
 * host keys, hostname "base", hosts with a 127.0.1.1 line, DHCP/NM/networkd
 * leases, persistent-net rules, NetworkManager profiles and an fstab with
 * UUID= entries for /, /boot and swap.
 */
export async function makeFakeGuest(
  root: string,
  options: { sshKeys?: boolean; sshd?: boolean; newMac?: string } = {},
): Promise<FakeGuest> {
  const base = freshIds();
  const g: FakeGuest = {
    root,
    oldMachineId: base.machine_id,
    oldMac: base.mac_address,
    oldRootUuid: base.filesystem_uuid,
    oldBootUuid: base.boot_uuid,
    oldSwapUuid: base.swap_uuid,
    efiUuid: "ABCD-1234",
    fstab: "",
    grubCfg: "",
    defaultGrub: "",
    hosts: "",
    pwned: ["glint-pwned-1", "glint-pwned-2"],
  };
  const p = (rel: string) => path.join(root, rel);
  await put(p("etc/machine-id"), `${g.oldMachineId}\n`, 0o444);
  await put(p("var/lib/dbus/machine-id"), `${g.oldMachineId}\n`, 0o444);
  await fs.mkdir(p("etc/ssh"), { recursive: true });
  if (options.sshKeys ?? true) {
    for (const t of SSH_KEY_TYPES) {
      await runOk("ssh-keygen", [
        "-q",
        "-t",
        t,
        "-N",
        "",
        "-C",
        "root@base",
        "-f",
        p(`etc/ssh/ssh_host_${t}_key`),
      ]);
    }
  }
  if (options.sshd) await put(p("usr/sbin/sshd"), "#!/bin/sh\nexit 0\n", 0o755);
  await put(p("etc/ssh/sshd_config"), "# keep me\n");
  await put(p("etc/hostname"), "base\n");
  g.hosts =
    "127.0.0.1\tlocalhost\n127.0.1.1\tbase.example.org base\n\n# IPv6\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  await put(p("etc/hosts"), g.hosts);
  await put(p("var/lib/dhcp/dhclient.eth0.leases"), "lease { fixed-address 10.0.2.15; }\n");
  await put(p("var/lib/dhcp/dhclient6.eth0.leases"), "lease6 {}\n");
  await put(p("var/lib/dhcp/README.keep"), "not a lease\n");
  await put(p("var/lib/NetworkManager/internal-6c1c0a0e-eth0.lease"), "ADDRESS=10.0.2.15\n");
  await put(p("var/lib/NetworkManager/NetworkManager.state"), "[main]\nNetworkingEnabled=true\n");
  await put(p("var/lib/systemd/network/duid-lease"), "x\n");
  await put(
    p("etc/udev/rules.d/70-persistent-net.rules"),
    `SUBSYSTEM=="net", ATTR{address}=="${g.oldMac}", NAME="eth0"\n`,
  );
  await put(p("etc/udev/rules.d/99-local.rules"), "# keep me\n");
  const nm = "etc/NetworkManager/system-connections";
  await put(
    p(`${nm}/old-nic.nmconnection`),
    `[connection]\nid=old-nic\ntype=ethernet\n\n[ethernet]\nmac-address=${g.oldMac.toUpperCase()}\n`,
    0o600,
  );
  if (options.newMac) {
    await put(
      p(`${nm}/new-nic.nmconnection`),
      `[connection]\nid=new-nic\n[ethernet]\nmac-address=${options.newMac.toUpperCase()};\n`,
      0o600,
    );
  }
  await put(
    p(`${nm}/Wired connection 1.nmconnection`),
    "[connection]\nid=Wired connection 1\ntype=ethernet\n[ethernet]\ncloned-mac-address=random\n",
    0o600,
  );
  await put(
    p(`${nm}/$(touch ${g.pwned[0]}); x.nmconnection`),
    `[ethernet]\n mac-address = ${g.oldMac}\n`,
    0o600,
  );
  await put(
    p(`${nm}/\`touch ${g.pwned[1]}\`.nmconnection`),
    `[ethernet]\nmac-address=${g.oldMac}\n`,
    0o600,
  );
  g.fstab = [
    "# /etc/fstab: static file system information.",
    `UUID=${g.oldRootUuid} /               ext4    errors=remount-ro 0       1`,
    `UUID=${g.oldBootUuid} /boot           ext4    defaults        0       2`,
    `UUID=${g.efiUuid}  /boot/efi       vfat    umask=0077      0       1`,
    `UUID=${g.oldSwapUuid} none            swap    sw              0       0`,
    "/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0",
    "",
  ].join("\n");
  await put(p("etc/fstab"), g.fstab);
  g.grubCfg = [
    `search --no-floppy --fs-uuid --set=root ${g.oldBootUuid}`,
    `linux /vmlinuz-6.1.0-amd64 root=UUID=${g.oldRootUuid} ro quiet resume=UUID=${g.oldSwapUuid}`,
    "",
  ].join("\n");
  await put(p("boot/grub/grub.cfg"), g.grubCfg, 0o444);
  g.defaultGrub = `GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet resume=UUID=${g.oldSwapUuid.toUpperCase()}"\n`;
  await put(p("etc/default/grub"), g.defaultGrub);
  return g;
}

/** `ssh-keygen -lf` fingerprint (SHA256:…) of a public key file. */
export async function fingerprint(pubKey: string): Promise<string> {
  const out = await runOk("ssh-keygen", ["-lf", pubKey]);
  const fp = out.split(/\s+/)[1];
  if (!fp?.startsWith("SHA256:")) throw new Error(`unexpected ssh-keygen -lf output: ${out}`);
  return fp;
}

export async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** `key=value` lines of a file as an object. */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

/** The shells the post-install script must run under. */
export const SHELLS: [string, string[]][] = [
  ["dash", ["dash"]],
  ["bash", ["bash", "--posix"]],
  ["busybox sh", ["busybox", "sh"]],
];

/** Per-test timeout of the script tests. */
export const TIMEOUT = 60_000;

/** The VM name the script tests render for. */
export const VM = "web-01";

/**
 * Run the rendered script under `shell` against the fake guest root, with
 * its own TMPDIR, and check that the script's private temp dir is gone.
 */
export async function runScriptUnder(
  shell: readonly string[],
  script: string,
  dirs: { root: string; tmp: string; work: string },
  args: readonly string[] = [],
): Promise<RunResult> {
  const [cmd, ...pre] = shell as [string, ...string[]];
  const r = await run(cmd, [...pre, script, "--root", dirs.root, ...args], {
    env: { ...process.env, TMPDIR: dirs.tmp },
    cwd: dirs.work,
  });
  // The script's private temp dir is always cleaned up.
  expect(await fs.readdir(dirs.tmp)).toEqual([]);
  return r;
}
