/**
 * Runs the static set_identifiers.sh with an identity.env beside it against a
 * fake Debian guest root (--root) under dash, bash and busybox sh, and checks
 * every file afterwards.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  APPLIED_RECORD_KEYS,
  formatAppliedRecord,
  type HostnameFrom,
  identityEnvValues,
  SCRIPT_FILE,
} from "../../src/guest/index.js";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import { run } from "../support/exec.js";
import {
  exists,
  type FakeGuest,
  fingerprint,
  makeFakeGuest,
  parseKeyValues,
  runScriptUnder,
  SHELLS,
  SSH_KEY_TYPES,
  TIMEOUT,
  VM,
  writeGuestFiles,
} from "../support/guest-root.js";
import { freshIds, regenerate } from "../support/identity.js";
import { snapshotTree } from "../support/snapshot.js";
import { tempDir } from "../support/tmp.js";

async function fingerprints(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of SSH_KEY_TYPES) {
    out[t] = await fingerprint(path.join(root, `etc/ssh/ssh_host_${t}_key.pub`));
  }
  return out;
}

function replaceAll(text: string, pairs: [string, string][]): string {
  let out = text;
  for (const [from, to] of pairs) out = out.split(from).join(to);
  return out;
}

describe.each(SHELLS)("set_identifiers.sh under %s", (_label, shell) => {
  let work: string;
  let root: string;
  let tmp: string;

  beforeEach(async () => {
    work = await tempDir("glint-script-");
    root = path.join(work, "root");
    tmp = path.join(work, "tmp");
    await fs.mkdir(root);
    await fs.mkdir(tmp);
  });

  afterEach(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  /** The script and identity.env in `work/<dir>/`, as in `<vm>/shared/`; returns the script. */
  async function writeScript(
    ids: SystemIdentifiers,
    hostnameFrom: HostnameFrom = "name",
    dir = "shared",
  ): Promise<string> {
    return writeGuestFiles(path.join(work, dir), ids, hostnameFrom);
  }

  function runScript(script: string, args: string[] = []) {
    return runScriptUnder(shell, script, { root, tmp, work }, args);
  }

  async function read(rel: string): Promise<string> {
    return fs.readFile(path.join(root, rel), "utf8");
  }

  test(
    "applies the identity to an offline root; a second run changes nothing",
    async () => {
      const ids = freshIds();
      const g: FakeGuest = await makeFakeGuest(root, { newMac: ids.mac_address });
      const before = await fingerprints(root);
      const script = await writeScript(ids);

      const r = await runScript(script);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);

      // machine-id and its dbus copy
      expect(await read("etc/machine-id")).toBe(`${ids.machine_id}\n`);
      expect((await fs.stat(path.join(root, "etc/machine-id"))).mode & 0o777).toBe(0o444);
      expect(await read("var/lib/dbus/machine-id")).toBe(`${ids.machine_id}\n`);

      // SSH host keys: all regenerated
      const after = await fingerprints(root);
      for (const t of SSH_KEY_TYPES) {
        expect(after[t]).not.toBe(before[t]);
        const st = await fs.stat(path.join(root, `etc/ssh/ssh_host_${t}_key`));
        expect(st.mode & 0o077).toBe(0);
      }
      expect(await read("etc/ssh/sshd_config")).toBe("# keep me\n");

      // hostname and hosts
      expect(await read("etc/hostname")).toBe(`${VM}\n`);
      expect(await read("etc/hosts")).toBe(
        g.hosts.replace("127.0.1.1\tbase.example.org base", `127.0.1.1\t${VM}`),
      );

      // cached network state
      for (const gone of [
        "var/lib/dhcp/dhclient.eth0.leases",
        "var/lib/dhcp/dhclient6.eth0.leases",
        "var/lib/NetworkManager/internal-6c1c0a0e-eth0.lease",
        "var/lib/systemd/network/duid-lease",
        "etc/udev/rules.d/70-persistent-net.rules",
        "etc/NetworkManager/system-connections/old-nic.nmconnection",
        `etc/NetworkManager/system-connections/$(touch ${g.pwned[0]}); x.nmconnection`,
        `etc/NetworkManager/system-connections/\`touch ${g.pwned[1]}\`.nmconnection`,
      ]) {
        expect(await exists(path.join(root, gone)), gone).toBe(false);
      }
      for (const kept of [
        "var/lib/dhcp/README.keep",
        "var/lib/NetworkManager/NetworkManager.state",
        "etc/udev/rules.d/99-local.rules",
        "etc/NetworkManager/system-connections/Wired connection 1.nmconnection",
        "etc/NetworkManager/system-connections/new-nic.nmconnection",
      ]) {
        expect(await exists(path.join(root, kept)), kept).toBe(true);
      }
      for (const f of g.pwned) {
        expect(await exists(path.join(work, f))).toBe(false);
        expect(await exists(path.join(root, f))).toBe(false);
      }

      // disk ids: only reported
      expect(await read("etc/fstab")).toBe(g.fstab);
      expect(await read("boot/grub/grub.cfg")).toBe(g.grubCfg);
      expect(r.stdout).toContain(`${g.oldRootUuid} -> ${ids.filesystem_uuid}`);
      expect(r.stdout).toContain(`${g.oldBootUuid} -> ${ids.boot_uuid}`);
      expect(r.stdout).toContain(`${g.oldSwapUuid} -> ${ids.swap_uuid}`);
      expect(r.stdout).toContain("/etc/fstab");
      expect(r.stdout).toContain("--disk-ids");

      // record and log
      const recordText = await read("etc/glint/applied");
      expect(
        recordText
          .trimEnd()
          .split("\n")
          .filter((l) => !l.startsWith("#"))
          .map((l) => l.split("=")[0]),
      ).toEqual(APPLIED_RECORD_KEYS);
      const record = parseKeyValues(recordText);
      expect(record).toMatchObject({
        vm_name: VM,
        vm_uuid: ids.vm_uuid,
        generation: String(ids.generation),
        vm_generation_id: ids.vm_generation_id,
        machine_id: ids.machine_id,
        mac_address: ids.mac_address,
        hostname: VM,
        filesystem_uuid: ids.filesystem_uuid,
        cpu_serial: ids.cpu_serial,
        motherboard_serial: ids.motherboard_serial,
        disk_ids: "pending",
      });
      const log = await read("var/log/glint-identifiers.log");
      const lines = log.trimEnd().split("\n");
      expect(lines.length).toBeGreaterThan(5);
      for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /);
      expect(log).toContain(`set /etc/machine-id to ${ids.machine_id}`);

      // second run: nothing changes, not even mtimes or the log
      const snap = await snapshotTree(root);
      const r2 = await runScript(script);
      expect(r2.code).toBe(0);
      expect(r2.stdout).toContain("nothing to do");
      for (const line of r2.stdout.trimEnd().split("\n")) {
        expect(line).toMatch(/^glint-set-identifiers: (VM |disk ids: |nothing to do)/);
      }
      expect(await snapshotTree(root)).toEqual(snap);
    },
    TIMEOUT,
  );

  test(
    "a root that offline sysprep marked applied (formatAppliedRecord) keeps its leases and SSH host keys",
    async () => {
      const ids = freshIds();
      await makeFakeGuest(root, { newMac: ids.mac_address });
      const script = await writeScript(ids);
      // What the script itself records equals what sysprep writes offline.
      const first = await runScript(script, ["--disk-ids"]);
      expect(first.code).toBe(0);
      const body = (t: string) => t.replace(/^applied_at=.*$/m, "");
      const offline = formatAppliedRecord(identityEnvValues(VM, ids));
      expect(body(await read("etc/glint/applied"))).toBe(body(offline));

      // A fresh root carrying only the offline record: the script changes nothing.
      await fs.rm(root, { recursive: true, force: true });
      await fs.mkdir(root);
      await makeFakeGuest(root, { newMac: ids.mac_address });
      await fs.mkdir(path.join(root, "etc/glint"), { recursive: true });
      await fs.writeFile(path.join(root, "etc/glint/applied"), offline);
      const keys = await fingerprints(root);
      const r = await runScript(script);
      expect(r.code).toBe(0);
      // Files that do not hold the identity yet are still fixed (here: the
      // fake root's machine-id); the per-instance state of this boot is kept.
      expect(r.stdout).toContain(`set /etc/machine-id to ${ids.machine_id}`);
      expect(r.stdout).not.toContain("lease");
      expect(r.stdout).not.toContain("SSH host keys");
      expect(await exists(path.join(root, "var/lib/dhcp/dhclient.eth0.leases"))).toBe(true);
      expect(await fingerprints(root)).toEqual(keys);
    },
    TIMEOUT,
  );

  test(
    "--dry-run changes nothing in the tree (not even the log or /etc/glint)",
    async () => {
      const ids = freshIds();
      await makeFakeGuest(root);
      const script = await writeScript(ids);
      const snap = await snapshotTree(root);
      const r = await runScript(script, ["--dry-run", "--disk-ids"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`would set /etc/machine-id to ${ids.machine_id}`);
      expect(r.stdout).toContain("would install new SSH host keys");
      expect(r.stdout).toContain("would remove dhclient lease /var/lib/dhcp/dhclient.eth0.leases");
      expect(r.stdout).toContain(`would replace root UUID`);
      expect(r.stdout).toContain("dry run");
      expect(await snapshotTree(root)).toEqual(snap);
      expect(await exists(path.join(root, "etc/glint"))).toBe(false);
      expect(await exists(path.join(root, "var/log/glint-identifiers.log"))).toBe(false);
    },
    TIMEOUT,
  );

  test(
    "--disk-ids rewrites UUID references in fstab and GRUB in the same run",
    async () => {
      const ids = freshIds();
      const g = await makeFakeGuest(root);
      const script = await writeScript(ids);
      const r = await runScript(script, ["--disk-ids"]);
      expect(r.code).toBe(0);
      const pairs: [string, string][] = [
        [g.oldRootUuid, ids.filesystem_uuid],
        [g.oldBootUuid, ids.boot_uuid],
        [g.oldSwapUuid, ids.swap_uuid],
      ];
      expect(await read("etc/fstab")).toBe(replaceAll(g.fstab, pairs));
      expect(await read("etc/fstab")).toContain(`UUID=${g.efiUuid}  /boot/efi`);
      expect(await read("boot/grub/grub.cfg")).toBe(replaceAll(g.grubCfg, pairs));
      expect((await fs.stat(path.join(root, "boot/grub/grub.cfg"))).mode & 0o777).toBe(0o444);
      expect(await read("etc/default/grub")).toBe(
        replaceAll(g.defaultGrub, [[g.oldSwapUuid.toUpperCase(), ids.swap_uuid]]),
      );
      // offline: the caller is told which device UUIDs still have to change
      expect(r.stdout).toContain(`tune2fs -U ${ids.filesystem_uuid}`);
      expect(r.stdout).toContain(`swaplabel -U ${ids.swap_uuid}`);
      expect(parseKeyValues(await read("etc/glint/applied")).disk_ids).toBe("applied");

      const snap = await snapshotTree(root);
      const r2 = await runScript(script, ["--disk-ids"]);
      expect(r2.stdout).toContain("nothing to do");
      expect(await snapshotTree(root)).toEqual(snap);
    },
    TIMEOUT,
  );

  test(
    "a new generation regenerates keys and cleans leases again; a hostname change alone does not",
    async () => {
      const ids1 = freshIds();
      await makeFakeGuest(root);
      await runScript(await writeScript(ids1, "machine-id", "gen1"));
      const short = `glint-${ids1.machine_id.slice(0, 8)}`;
      expect(await read("etc/hostname")).toBe(`${short}\n`);
      expect(await read("etc/hosts")).toContain(`127.0.1.1\t${short}\n`);
      const fp1 = await fingerprints(root);

      // Same identity, other hostname source: hostname changes, keys stay.
      const r = await runScript(await writeScript(ids1, "name", "gen1-name"));
      expect(r.stdout).not.toContain("nothing to do");
      expect(await read("etc/hostname")).toBe(`${VM}\n`);
      expect(await fingerprints(root)).toEqual(fp1);
      // ...and the command line option overrides identity.env's HOSTNAME.
      await runScript(path.join(work, "gen1-name", "set_identifiers.sh"), [
        "--hostname-from",
        "machine-id",
      ]);
      expect(await read("etc/hostname")).toBe(`${short}\n`);
      expect(await fingerprints(root)).toEqual(fp1);

      // The guest ran a while: new lease, new udev rule.
      await fs.writeFile(path.join(root, "var/lib/dhcp/dhclient.eth0.leases"), "lease {}\n");
      await fs.writeFile(path.join(root, "etc/udev/rules.d/70-persistent-net.rules"), "# x\n");

      // "disk" keeps machine-id and MAC but bumps generation and vm_generation_id.
      const ids2 = regenerate(ids1, "disk");
      expect(ids2.machine_id).toBe(ids1.machine_id);
      const r2 = await runScript(await writeScript(ids2, "machine-id", "gen2"));
      expect(r2.stdout).toContain("identity changed");
      const fp2 = await fingerprints(root);
      for (const t of SSH_KEY_TYPES) expect(fp2[t]).not.toBe(fp1[t]);
      expect(await exists(path.join(root, "var/lib/dhcp/dhclient.eth0.leases"))).toBe(false);
      expect(await exists(path.join(root, "etc/udev/rules.d/70-persistent-net.rules"))).toBe(false);
      expect(parseKeyValues(await read("etc/glint/applied")).generation).toBe("2");

      // "base" redraws everything: new machine-id in both places.
      const ids3 = regenerate(ids2, "base");
      await runScript(await writeScript(ids3, "name", "gen3"));
      expect(await read("etc/machine-id")).toBe(`${ids3.machine_id}\n`);
      expect(await read("var/lib/dbus/machine-id")).toBe(`${ids3.machine_id}\n`);
      expect(await fingerprints(root)).not.toEqual(fp2);
    },
    TIMEOUT,
  );

  test(
    "dbus symlink to /etc/machine-id is kept; sshd without keys gets keys; no sshd gets none",
    async () => {
      const ids = freshIds();
      await makeFakeGuest(root, { sshKeys: false, sshd: true });
      const dbus = path.join(root, "var/lib/dbus/machine-id");
      await fs.rm(dbus);
      await fs.symlink("/etc/machine-id", dbus);
      const script = await writeScript(ids);
      expect((await runScript(script)).code).toBe(0);
      expect(await fs.readlink(dbus)).toBe("/etc/machine-id");
      expect(await read("etc/machine-id")).toBe(`${ids.machine_id}\n`);
      for (const t of SSH_KEY_TYPES) {
        expect(await exists(path.join(root, `etc/ssh/ssh_host_${t}_key`))).toBe(true);
      }

      const other = path.join(work, "root2");
      await fs.mkdir(other);
      await makeFakeGuest(other, { sshKeys: false, sshd: false });
      const [cmd, ...pre] = shell as [string, ...string[]];
      const r = await run(cmd, [...pre, script, "--root", other]);
      expect(r.code).toBe(0);
      expect((await fs.readdir(path.join(other, "etc/ssh"))).sort()).toEqual(["sshd_config"]);
    },
    TIMEOUT,
  );

  test(
    "an ssh-keygen that writes nothing keeps the old keys, fails, and a rerun finishes the job",
    async () => {
      const ids = freshIds();
      await makeFakeGuest(root);
      const before = await fingerprints(root);
      const fakeBin = path.join(work, "bin");
      await fs.mkdir(fakeBin);
      await fs.writeFile(path.join(fakeBin, "ssh-keygen"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      const script = await writeScript(ids);
      const [cmd, ...pre] = shell as [string, ...string[]];
      const r = await run(cmd, [...pre, script, "--root", root], {
        env: { ...process.env, TMPDIR: tmp, PATH: `${fakeBin}:${process.env.PATH ?? ""}` },
        cwd: work,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("created no host keys");
      expect(await fingerprints(root)).toEqual(before);
      expect(await exists(path.join(root, "etc/glint/applied"))).toBe(false);
      expect(await fs.readdir(tmp)).toEqual([]);

      const r2 = await runScript(script);
      expect(r2.code).toBe(0);
      const after = await fingerprints(root);
      for (const t of SSH_KEY_TYPES) expect(after[t]).not.toBe(before[t]);
      expect(parseKeyValues(await read("etc/glint/applied")).vm_uuid).toBe(ids.vm_uuid);
    },
    TIMEOUT,
  );

  test(
    "--env FILE reads identity.env from elsewhere; without one the script refuses and changes nothing",
    async () => {
      const ids = freshIds();
      await makeFakeGuest(root, { sshKeys: false });
      const snap = await snapshotTree(root);
      const script = await writeScript(ids);
      const shared = path.dirname(script);
      // identity.env moves away from the script: the default finds nothing.
      const env = path.join(work, "elsewhere.env");
      await fs.rename(path.join(shared, "identity.env"), env);
      const missing = await runScript(script);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`${shared}/identity.env not found`);
      expect(await snapshotTree(root)).toEqual(snap);

      const r = await runScript(script, ["--env", env, "--no-ssh-keys"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(await read("etc/machine-id")).toBe(`${ids.machine_id}\n`);
      // --env=FILE works too, and the run after finds nothing to do.
      const again = await runScript(script, [`--env=${env}`, "--no-ssh-keys"]);
      expect(again.stdout).toContain("nothing to do");
    },
    TIMEOUT,
  );

  test(
    "a record from before identity.env (fewer keys) is completed without new SSH keys",
    async () => {
      const ids = freshIds();
      await makeFakeGuest(root);
      const script = await writeScript(ids);
      expect((await runScript(script)).code).toBe(0);
      const fp = await fingerprints(root);
      const recordFile = path.join(root, "etc/glint/applied");
      const newKeys = ["dmi_uuid", "smbios_uuid", "cpu_serial", "motherboard_serial", "bios_uuid"];
      const full = await fs.readFile(recordFile, "utf8");
      const old = full
        .split("\n")
        .filter((l) => !newKeys.includes(l.split("=")[0] ?? ""))
        .join("\n");
      expect(old).not.toBe(full);
      await fs.writeFile(recordFile, old);
      await fs.writeFile(path.join(root, "var/lib/dhcp/dhclient.eth0.leases"), "lease {}\n");

      const r = await runScript(script);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain("identity changed");
      expect(await fingerprints(root)).toEqual(fp);
      expect(await exists(path.join(root, "var/lib/dhcp/dhclient.eth0.leases"))).toBe(true);
      expect(parseKeyValues(await read("etc/glint/applied"))).toMatchObject({
        cpu_serial: ids.cpu_serial,
        bios_uuid: ids.bios_uuid,
      });

      // A value that differs from the record is a new identity, though.
      const changed = parseKeyValues(await read("etc/glint/applied"));
      await fs.writeFile(
        recordFile,
        (await read("etc/glint/applied")).replace(`bios_uuid=${changed.bios_uuid}`, "bios_uuid=x"),
      );
      const r2 = await runScript(script);
      expect(r2.stdout).toContain("identity changed");
      expect(await fingerprints(root)).not.toEqual(fp);
    },
    TIMEOUT,
  );

  test(
    "refuses bad usage",
    async () => {
      await makeFakeGuest(root, { sshKeys: false });
      const snap = await snapshotTree(root);
      const script = await writeScript(freshIds());
      const bad = await runScript(script, ["--frobnicate"]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("unknown option");
      const badFrom = await runScript(script, ["--hostname-from", "$(id)"]);
      expect(badFrom.code).toBe(2);
      const noEnv = await runScript(script, ["--env"]);
      expect(noEnv.code).toBe(2);
      expect(await snapshotTree(root)).toEqual(snap);
    },
    TIMEOUT,
  );
});

describe("shellcheck", () => {
  test("the static script is clean under shellcheck -s sh", async () => {
    const work = await tempDir("glint-shellcheck-");
    try {
      const r = await run("shellcheck", ["-s", "sh", SCRIPT_FILE]);
      expect(r.stdout + r.stderr).toBe("");
      expect(r.code).toBe(0);
      // shellcheck does flag a real problem (the check can fail).
      const broken = path.join(work, "broken.sh");
      await fs.writeFile(broken, "#!/bin/sh\nx=$1\nrm -rf $x/*\n");
      expect((await run("shellcheck", ["-s", "sh", broken])).code).not.toBe(0);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
