/**
 * Issue "guest side": a clone of a shared base disk comes up with its own
 * machine-id, hostname and SSH host keys, applied inside the guest by the
 * static set_identifiers.sh and the VM's identity.env, delivered through the
 * cloud-init seed or the 9p share.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parseIdentityEnv, SCRIPT_FILE } from "../../src/guest/index.js";
import { vmPaths } from "../../src/vm/layout.js";
import { readIds, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { bootWithGlint, type Markers, markerValue } from "./guest/runner.js";

const exec = promisify(execFile);

let guest: TinyGuest;
let home: string;
let base: string;
let baseFingerprint: string;

/** ssh-keygen and the shared libraries it needs, as initramfs files. */
async function sshKeygenFiles(): Promise<Record<string, Buffer>> {
  const bin = "/usr/bin/ssh-keygen";
  const { stdout } = await exec("ldd", [bin]);
  const files: Record<string, Buffer> = {
    "/bin/ssh-keygen": readFileSync(bin),
    // ssh-keygen refuses to run for a uid without a passwd entry.
    "/etc/passwd": Buffer.from("root:x:0:0:root:/root:/bin/sh\n"),
    "/etc/group": Buffer.from("root:x:0:\n"),
  };
  for (const m of stdout.matchAll(/(\/\S+\.so[.\d]*)/g)) {
    const lib = m[1] ?? "";
    files[lib] = readFileSync(lib);
  }
  return files;
}

/** A base ext4 root: one machine-id, one set of SSH host keys, one hostname, a stale lease. */
async function buildBaseImage(dir: string): Promise<string> {
  const root = path.join(dir, "root");
  for (const d of ["etc/ssh", "var/lib/dbus", "var/lib/dhcp", "usr/sbin"]) {
    await fs.mkdir(path.join(root, d), { recursive: true });
  }
  await fs.writeFile(path.join(root, "etc/machine-id"), "0123456789abcdef0123456789abcdef\n");
  await fs.writeFile(
    path.join(root, "var/lib/dbus/machine-id"),
    "0123456789abcdef0123456789abcdef\n",
  );
  await fs.writeFile(path.join(root, "etc/hostname"), "base\n");
  await fs.writeFile(path.join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\tbase\n");
  await fs.writeFile(
    path.join(root, "var/lib/dhcp/dhclient.eth0.leases"),
    "lease { fixed-address 10.0.2.15; }\n",
  );
  await exec("ssh-keygen", ["-A", "-f", root]);
  const { stdout } = await exec("ssh-keygen", [
    "-lf",
    path.join(root, "etc/ssh/ssh_host_ed25519_key.pub"),
  ]);
  baseFingerprint = stdout.split(" ")[1] ?? "";
  const raw = path.join(dir, "base.raw");
  await exec("mkfs.ext4", ["-q", "-F", "-d", root, raw, "16M"]);
  const qcow = path.join(dir, "base.qcow2");
  await exec("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow]);
  return qcow;
}

beforeAll(async () => {
  guest = await tinyGuest({
    extraFiles: {
      "/apply-identity.sh": readFileSync(new URL("./guest/apply-identity.sh", import.meta.url)),
      ...(await sshKeygenFiles()),
    },
  });
  home = await tempDir("glint-e2e-guest-");
  base = await buildBaseImage(home);
}, 300_000);

interface GuestState {
  machineId: string;
  dbus: string;
  hostname: string;
  hosts: string;
  ssh: string;
  sshRsa: string;
  lease: string;
  recordVmName: string;
  scriptSha: string;
}

function applied(markers: Markers, route: string): GuestState {
  const out = (markers.first_out ?? []).join("\n");
  expect(markerValue(markers, "route")).toBe(route);
  expect(markerValue(markers, "first_rc"), out).toBe("0");
  expect(markerValue(markers, "second_rc")).toBe("0");
  expect((markers.second_out ?? []).join("\n")).toMatch(/nothing to do/i);
  return {
    machineId: markerValue(markers, "guest_machine_id"),
    dbus: markerValue(markers, "guest_dbus_machine_id"),
    hostname: markerValue(markers, "guest_hostname"),
    hosts: markerValue(markers, "guest_hosts"),
    ssh: markerValue(markers, "guest_ssh_ed25519"),
    sshRsa: markerValue(markers, "guest_ssh_rsa"),
    lease: markerValue(markers, "guest_lease"),
    recordVmName: markerValue(markers, "guest_record_vm_name"),
    scriptSha: markerValue(markers, "guest_script_sha"),
  };
}

async function boot(vm: string, route: "cidata" | "9p"): Promise<GuestState> {
  const result = await bootWithGlint(
    home,
    vm,
    guest,
    `glint.cidata=wait glint.route=${route} glint.hook=/apply-identity.sh`,
  );
  return applied(result.markers, route);
}

async function expectMatches(state: GuestState, vm: string): Promise<void> {
  const ids = await readIds(home, vm);
  expect(state.machineId).toBe(ids.machine_id);
  expect(state.dbus).toBe(ids.machine_id);
  expect(state.hostname).toBe(vm);
  expect(state.hosts).toMatch(new RegExp(`^127\\.0\\.1\\.1\\s+${vm}\\b`));
  expect(state.ssh).toMatch(/^SHA256:/);
  expect(state.ssh).not.toBe(baseFingerprint);
  expect(state.lease).toBe("gone");
  expect(state.recordVmName).toBe(vm);
  // The script the guest ran is the static one, whichever route brought it.
  expect(state.scriptSha).toBe(
    createHash("sha256").update(readFileSync(SCRIPT_FILE)).digest("hex"),
  );
}

describe("set_identifiers.sh inside a real guest", () => {
  let first: { a: GuestState; b: GuestState };

  it("two clones of one base disk end with their own machine-id, hostname and SSH keys", async () => {
    await runCliOk(["create", "guest-a", "--home", home, "--base", base, "--overlay"]);
    await runCliOk(["create", "guest-b", "--home", home, "--base", base, "--overlay"]);
    // Two VMs: byte-identical scripts, each with a valid identity.env of its own.
    const pa = vmPaths(home, "guest-a");
    const pb = vmPaths(home, "guest-b");
    expect(await fs.readFile(pb.script)).toEqual(await fs.readFile(pa.script));
    const envA = parseIdentityEnv(await fs.readFile(pa.identityEnv, "utf8"), pa.identityEnv);
    const envB = parseIdentityEnv(await fs.readFile(pb.identityEnv, "utf8"), pb.identityEnv);
    expect(envA.VM_NAME).toBe("guest-a");
    expect(envB.VM_NAME).toBe("guest-b");
    expect(envA.MACHINE_ID).toBe((await readIds(home, "guest-a")).machine_id);
    expect(envB.MACHINE_ID).toBe((await readIds(home, "guest-b")).machine_id);
    const a = await boot("guest-a", "cidata");
    const b = await boot("guest-b", "9p");
    await expectMatches(a, "guest-a");
    await expectMatches(b, "guest-b");
    expect(a.machineId).not.toBe(b.machineId);
    expect(a.hostname).not.toBe(b.hostname);
    expect(a.ssh).not.toBe(b.ssh);
    expect(a.sshRsa).not.toBe(b.sshRsa);
    first = { a, b };
  }, 600_000);

  it("after glint nuke the values change again", async () => {
    await runCliOk(["nuke", "guest-a", "--yes", "--home", home]);
    const again = await boot("guest-a", "cidata");
    await expectMatches(again, "guest-a");
    expect(again.machineId).not.toBe(first.a.machineId);
    expect(again.ssh).not.toBe(first.a.ssh);
  }, 600_000);
});
