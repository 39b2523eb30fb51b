/**
 * Guest-side test helpers: a fake Debian guest root, the guest files in a
 * directory, hostile identity.env texts, arbitraries for identities, and
 * running the script under a given shell against a guest root.
 * External tools run through execFile/spawn with argv arrays only.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { expect } from "vitest";
import { type HostnameFrom, loadScript, renderIdentityEnv } from "../../src/guest/index.js";
import { VM_NAME_RE } from "../../src/identity/formats.js";
import {
  parseIdentifiers,
  type SystemIdentifiers,
  uuidV4FromBytes,
} from "../../src/identity/model.js";
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

/**
 * The static script and `ids`' identity.env, side by side in `dir` (created),
 * as Glint writes them into `<vm>/shared/`. Returns the script's path.
 */
export async function writeGuestFiles(
  dir: string,
  ids: SystemIdentifiers,
  hostnameFrom: HostnameFrom = "name",
  vm = VM,
): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const script = path.join(dir, "set_identifiers.sh");
  await fs.writeFile(script, loadScript(), { mode: 0o755 });
  await fs.writeFile(path.join(dir, "identity.env"), renderIdentityEnv(vm, ids, { hostnameFrom }));
  return script;
}

/** Replace the value of `key` in identity.env text `env`. */
export function setEnvValue(env: string, key: string, value: string): string {
  const re = new RegExp(`^${key}=.*$`, "m");
  expect(env).toMatch(re);
  return env.replace(re, () => `${key}=${value}`);
}

/** A file the hostile identity.env values below try to create in the working directory. */
export const ENV_PWNED = "glint-env-pwned";

/**
 * identity.env texts that Glint's parser and the guest script must both
 * refuse: each maps a valid identity.env (of `ids`, VM {@link VM}, hostname
 * from the name) to a broken one.
 */
export const BAD_ENVS: Record<string, (env: string, ids: SystemIdentifiers) => string> = {
  "MAC not locally administered": (e, ids) =>
    setEnvValue(e, "MAC_ADDRESS", ids.mac_address.replace("52:54:00", "00:16:3e")),
  "MAC multicast": (e, ids) =>
    setEnvValue(e, "MAC_ADDRESS", ids.mac_address.replace("52:54:00", "53:54:00")),
  "MAC in uppercase": (e) => setEnvValue(e, "MAC_ADDRESS", "52:54:00:AB:CD:EF"),
  "MAC with 7 octets": (e, ids) => setEnvValue(e, "MAC_ADDRESS", `${ids.mac_address}:00`),
  "machine-id all zeros": (e) => setEnvValue(e, "MACHINE_ID", "0".repeat(32)),
  "machine-id without v4 bits": (e) =>
    setEnvValue(e, "MACHINE_ID", "0123456789ab1def8123456789abcdef"),
  "machine-id with a bad variant": (e) =>
    setEnvValue(e, "MACHINE_ID", "0123456789ab4def0123456789abcdef"),
  "machine-id in uppercase": (e, ids) =>
    setEnvValue(e, "MACHINE_ID", `A${ids.machine_id.slice(1).toUpperCase()}`),
  "machine-id with dashes": (e, ids) =>
    setEnvValue(e, "MACHINE_ID", `${ids.machine_id.slice(0, 8)}-${ids.machine_id.slice(8, 32)}`),
  "UUID in uppercase": (e, ids) => setEnvValue(e, "VM_UUID", ids.vm_uuid.toUpperCase()),
  "UUID version 1": (e, ids) =>
    setEnvValue(e, "DISK_UUID", `${ids.disk_uuid.slice(0, 14)}1${ids.disk_uuid.slice(15)}`),
  "UUID with variant c": (e, ids) =>
    setEnvValue(e, "BOOT_UUID", `${ids.boot_uuid.slice(0, 19)}c${ids.boot_uuid.slice(20)}`),
  "UUID without dashes": (e, ids) =>
    setEnvValue(e, "VM_GENERATION_ID", ids.vm_generation_id.replaceAll("-", "")),
  "CPU serial in lowercase": (e, ids) =>
    setEnvValue(e, "CPU_SERIAL", `CPU${ids.cpu_serial.slice(3).toLowerCase()}x`),
  "CPU serial with the MB prefix": (e) => setEnvValue(e, "CPU_SERIAL", "MB0123456789ABCDEF"),
  "CPU serial too short": (e) => setEnvValue(e, "CPU_SERIAL", "CPU123"),
  "board serial too long": (e) => setEnvValue(e, "MOTHERBOARD_SERIAL", `MB${"A".repeat(33)}`),
  "generation 0": (e) => setEnvValue(e, "GENERATION", "0"),
  "generation with a leading zero": (e) => setEnvValue(e, "GENERATION", "01"),
  "generation of 11 digits": (e) => setEnvValue(e, "GENERATION", "12345678901"),
  "VM name in uppercase": (e) =>
    setEnvValue(setEnvValue(e, "VM_NAME", "Web-01"), "HOSTNAME", "Web-01"),
  "VM name starting with -": (e) =>
    setEnvValue(setEnvValue(e, "VM_NAME", "-vm"), "HOSTNAME", "-vm"),
  "VM name of 64 characters": (e) =>
    setEnvValue(setEnvValue(e, "VM_NAME", "a".repeat(64)), "HOSTNAME", "a".repeat(64)),
  "hostname neither the name nor glint-<machine-id>": (e) => setEnvValue(e, "HOSTNAME", "other"),
  "unknown key": (e) => `${e}FOO=bar
`,
  "lowercase key": (e) => e.replace(/^VM_NAME=/m, "vm_name="),
  "duplicate key": (e) => `${e}${/^VM_UUID=.*$/m.exec(e)?.[0]}
`,
  "missing key": (e) => e.replace(/^BIOS_UUID=.*\n/m, ""),
  "no keys at all": () => "# nothing here\n",
  "empty file": () => "",
  "$(…) value": (e) => setEnvValue(e, "MACHINE_ID", `$(touch ${ENV_PWNED})`),
  "backtick value": (e) => setEnvValue(e, "VM_NAME", `\`touch ${ENV_PWNED}\``),
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion is the point
  "${…} value": (e) => setEnvValue(e, "VM_NAME", "${IFS}"),
  "value with ; and a command": (e) => setEnvValue(e, "VM_NAME", `web-01; touch ${ENV_PWNED}`),
  "shell command line": (e) => `${e}touch ${ENV_PWNED}\n`,
  "export line": (e) => e.replace(/^VM_NAME=/m, "export VM_NAME="),
  "quoted value": (e) => e.replace(/^VM_NAME=(.*)$/m, "VM_NAME='$1'"),
  "spaces around =": (e) => e.replace(/^VM_NAME=/m, "VM_NAME = "),
  "leading space": (e) => e.replace(/^VM_NAME=/m, "  VM_NAME="),
  "empty value": (e) => setEnvValue(e, "SWAP_UUID", ""),
  "value with =": (e, ids) => setEnvValue(e, "VM_UUID", `${ids.vm_uuid}=x`),
  "blank line": (e) => e.replace(/^VM_UUID=/m, "\nVM_UUID="),
  "CRLF line ends": (e) => e.replaceAll("\n", "\r\n"),
  "a tab": (e) => e.replace(/^(VM_NAME=.*)$/m, "$1\t"),
  "a NUL byte": (e) => e.replace(/^(MACHINE_ID=[0-9a-f]{4})/m, "$1\u0000"),
  "a UTF-8 character": (e) => e.replace(/^(VM_NAME=.*)$/m, "$1é"),
  "no final newline": (e) => e.slice(0, -1),
};

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

const uuidArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(uuidV4FromBytes);
const macArb = fc
  .uint8Array({ minLength: 3, maxLength: 3 })
  .map((b) => `52:54:00:${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":")}`);
const timestampArb = fc
  .date({
    min: new Date("2000-01-01T00:00:00Z"),
    max: new Date("2099-12-31T00:00:00Z"),
    noInvalidDate: true,
  })
  .map((d) => d.toISOString());

export const idsArb: fc.Arbitrary<SystemIdentifiers> = fc
  .record({
    vm_uuid: uuidArb,
    machine_id: uuidArb.map((u) => u.replaceAll("-", "")),
    mac_address: macArb,
    disk_uuid: uuidArb,
    partition_uuid: uuidArb,
    filesystem_uuid: uuidArb,
    boot_uuid: uuidArb,
    swap_uuid: uuidArb,
    dmi_uuid: uuidArb,
    smbios_uuid: uuidArb,
    cpu_serial: fc.stringMatching(/^CPU[0-9A-Z]{4,32}$/),
    motherboard_serial: fc.stringMatching(/^MB[0-9A-Z]{4,32}$/),
    bios_uuid: uuidArb,
    vm_generation_id: uuidArb,
    generation: fc.integer({ min: 1, max: 2 ** 31 }),
    created_at: timestampArb,
    updated_at: timestampArb,
  })
  .map((r) => parseIdentifiers({ schema_version: 1, ...r }));

export const vmNameArb = fc.stringMatching(VM_NAME_RE);
export const hostnameFromArb = fc.constantFrom<HostnameFrom>("name", "machine-id");
