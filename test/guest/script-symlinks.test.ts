/**
 * set_identifiers.sh --root must never write, create or delete through a
 * symlink inside the guest root that leads out of it: such a root is refused
 * as a whole, before anything changes, under dash, bash and busybox sh.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  exists,
  makeFakeGuest,
  runScriptUnder,
  SHELLS,
  SSH_KEY_TYPES,
  TIMEOUT,
  writeGuestFiles,
} from "../support/guest-root.js";
import { freshIds } from "../support/identity.js";
import { snapshotTree } from "../support/snapshot.js";
import { tempDir } from "../support/tmp.js";

/** Replace `root/rel` (file or directory) with an absolute symlink to `host/name`, moving it there. */
async function linkOut(root: string, host: string, rel: string, name: string): Promise<string> {
  const inside = path.join(root, rel);
  const outside = path.join(host, name);
  await fs.mkdir(path.dirname(inside), { recursive: true });
  await fs.mkdir(path.dirname(outside), { recursive: true });
  if (await exists(inside)) await fs.rename(inside, outside);
  else await fs.mkdir(outside, { recursive: true });
  await fs.symlink(outside, inside);
  return outside;
}

/** A setup that links `rel` out of the root to `host/name`. */
function linkedOut(rel: string, name: string) {
  return async (root: string, host: string): Promise<void> => {
    await linkOut(root, host, rel, name);
  };
}

interface RefusalCase {
  /** Path (guest view) the refusal must name. */
  refused: string;
  /** Turns the fake root into the unsafe one. */
  setup: (root: string, host: string) => Promise<void>;
  args?: string[];
}

const CASES: Record<string, RefusalCase> = {
  "var/lib -> host dir (dhcp leases)": {
    refused: "/var/lib/dhcp: /var/lib is a symlink",
    setup: async (root, host) => {
      await linkOut(root, host, "var/lib", "lib");
      await fs.writeFile(path.join(host, "lib/dhcp/eth0.leases"), "host lease\n");
    },
  },
  "var/lib/dbus -> host dir": {
    refused: "/var/lib/dbus/machine-id: /var/lib/dbus is a symlink",
    setup: linkedOut("var/lib/dbus", "dbus"),
  },
  "var/log -> host dir": {
    refused: "/var/log/glint-identifiers.log: /var/log is a symlink",
    setup: async (root, host) => {
      const out = await linkOut(root, host, "var/log", "log");
      await fs.writeFile(path.join(out, "syslog"), "host log\n");
    },
  },
  "var/log/glint-identifiers.log -> host file": {
    refused: "/var/log/glint-identifiers.log: it is a symlink",
    setup: async (root, host) => {
      await fs.mkdir(path.join(root, "var/log"), { recursive: true });
      await fs.writeFile(path.join(host, "host.log"), "host log\n");
      await fs.symlink(
        path.join(host, "host.log"),
        path.join(root, "var/log/glint-identifiers.log"),
      );
    },
  },
  "etc/ssh -> host dir": {
    refused: "/etc/ssh: it is a symlink",
    setup: linkedOut("etc/ssh", "ssh"),
  },
  "etc/hostname -> host file": {
    refused: "/etc/hostname: it is a symlink",
    setup: linkedOut("etc/hostname", "hostname"),
  },
  "etc/hosts -> host file": {
    refused: "/etc/hosts: it is a symlink",
    setup: linkedOut("etc/hosts", "hosts"),
  },
  "etc/machine-id -> host file": {
    refused: "/etc/machine-id: it is a symlink",
    setup: linkedOut("etc/machine-id", "machine-id"),
  },
  "etc/glint -> host dir": {
    refused: "/etc/glint/applied: /etc/glint is a symlink",
    setup: linkedOut("etc/glint", "glint"),
  },
  "etc/NetworkManager -> host dir": {
    refused: "/etc/NetworkManager/system-connections: /etc/NetworkManager is a symlink",
    setup: linkedOut("etc/NetworkManager", "nm"),
  },
  "etc/udev -> host dir": {
    refused: "/etc/udev/rules.d/70-persistent-net.rules: /etc/udev is a symlink",
    setup: linkedOut("etc/udev", "udev"),
  },
  "run/systemd -> host dir": {
    refused: "/run/systemd/netif/leases: /run/systemd is a symlink",
    setup: async (root, host) => {
      await fs.mkdir(path.join(root, "run/systemd/netif/leases"), { recursive: true });
      await fs.writeFile(path.join(root, "run/systemd/netif/leases/2"), "ADDRESS=10.0.2.15\n");
      await linkOut(root, host, "run/systemd", "systemd");
    },
  },
  "boot -> host dir, with --disk-ids": {
    refused: "/boot/grub/grub.cfg: /boot is a symlink",
    setup: linkedOut("boot", "boot"),
    args: ["--disk-ids"],
  },
  "etc/default -> host dir, with --disk-ids": {
    refused: "/etc/default/grub: /etc/default is a symlink",
    setup: linkedOut("etc/default", "default"),
    args: ["--disk-ids"],
  },
};

describe.each(SHELLS)("set_identifiers.sh --root with symlinks, under %s", (_label, shell) => {
  let work: string;
  let root: string;
  let host: string;
  let tmp: string;

  beforeEach(async () => {
    work = await tempDir("glint-symlinks-");
    root = path.join(work, "root");
    host = path.join(work, "host");
    tmp = path.join(work, "tmp");
    await fs.mkdir(root);
    await fs.mkdir(host);
    await fs.mkdir(tmp);
  });

  afterEach(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  async function writeScript(): Promise<string> {
    return writeGuestFiles(path.join(work, "shared"), freshIds());
  }

  function runScript(script: string, args: string[] = []) {
    return runScriptUnder(shell, script, { root, tmp, work }, args);
  }

  /** A fake guest with cheap stand-in SSH host keys (the script only deletes them). */
  async function fakeGuest(): Promise<void> {
    await makeFakeGuest(root, { sshKeys: false, sshd: true });
    for (const t of SSH_KEY_TYPES) {
      await fs.writeFile(path.join(root, `etc/ssh/ssh_host_${t}_key`), `old ${t} key\n`, {
        mode: 0o600,
      });
      await fs.writeFile(path.join(root, `etc/ssh/ssh_host_${t}_key.pub`), `old ${t} pub\n`);
    }
  }

  test(
    "var/lib, var/log and etc/ssh linked out, etc/hostname a link to a host file: refused, nothing changed anywhere",
    async () => {
      await makeFakeGuest(root);
      const lib = await linkOut(root, host, "var/lib", "lib");
      await fs.mkdir(path.join(lib, "dhcp"), { recursive: true });
      await fs.writeFile(
        path.join(lib, "dhcp/eth0.leases"),
        "lease { fixed-address 192.0.2.7; }\n",
      );
      const log = await linkOut(root, host, "var/log", "log");
      await fs.writeFile(path.join(log, "syslog"), "host syslog\n");
      await linkOut(root, host, "etc/ssh", "ssh");
      await linkOut(root, host, "etc/hostname", "hostname");
      expect(await fs.readFile(path.join(host, "hostname"), "utf8")).toBe("base\n");

      const hostBefore = await snapshotTree(host);
      const rootBefore = await snapshotTree(root);
      const script = await writeScript();

      for (const args of [["--dry-run"], []]) {
        const r = await runScript(script, args);
        expect(r.code, args.join(" ")).toBe(1);
        for (const refused of [
          "refusing to change /etc/hostname: it is a symlink",
          "refusing to change /etc/ssh: it is a symlink",
          "refusing to change /var/lib/dhcp: /var/lib is a symlink",
          "refusing to change /var/lib/dbus/machine-id: /var/lib is a symlink",
          "refusing to change /var/log/glint-identifiers.log: /var/log is a symlink",
        ]) {
          expect(r.stderr).toContain(refused);
        }
        expect(r.stderr).toContain(`to ${path.join(host, "lib")}`);
        expect(r.stderr).toContain("nothing was changed");
        expect(r.stdout).not.toMatch(/done:|dry run:/);

        // Outside the root: every file still there, same content and mtime.
        expect(await snapshotTree(host)).toEqual(hostBefore);
        expect(await fs.readFile(path.join(lib, "dhcp/eth0.leases"), "utf8")).toContain(
          "192.0.2.7",
        );
        expect(await fs.readFile(path.join(host, "hostname"), "utf8")).toBe("base\n");
        expect(await exists(path.join(log, "glint-identifiers.log"))).toBe(false);
        // Inside it: nothing either (no machine-id, no record).
        expect(await snapshotTree(root)).toEqual(rootBefore);
        expect(await exists(path.join(root, "etc/glint"))).toBe(false);
      }
    },
    TIMEOUT,
  );

  test.each(Object.entries(CASES))(
    "refuses %s before changing anything",
    async (_name, c) => {
      await fakeGuest();
      await c.setup(root, host);
      const hostBefore = await snapshotTree(host);
      const rootBefore = await snapshotTree(root);
      const r = await runScript(await writeScript(), c.args ?? []);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`refusing to change ${c.refused}`);
      expect(r.stderr).toContain("nothing was changed");
      expect(await snapshotTree(host)).toEqual(hostBefore);
      expect(await snapshotTree(root)).toEqual(rootBefore);
    },
    TIMEOUT,
  );

  test(
    "symlinked files it deletes are unlinked, never followed; a dbus link elsewhere becomes a plain file",
    async () => {
      const ids = freshIds();
      await fakeGuest();
      await fs.writeFile(path.join(host, "host.leases"), "host lease\n");
      await fs.writeFile(path.join(host, "host_key"), "host key\n");
      await fs.writeFile(path.join(host, "host.rules"), "# host rules\n");
      await fs.mkdir(path.join(host, "dbus-dir"));
      const links: [string, string][] = [
        ["var/lib/dhcp/dhclient.eth0.leases", "host.leases"],
        ["etc/ssh/ssh_host_rsa_key", "host_key"],
        ["etc/udev/rules.d/70-persistent-net.rules", "host.rules"],
        ["var/lib/dbus/machine-id", "dbus-dir"],
      ];
      for (const [rel, name] of links) {
        await fs.rm(path.join(root, rel));
        await fs.symlink(path.join(host, name), path.join(root, rel));
      }
      const hostBefore = await snapshotTree(host);
      const script = await writeGuestFiles(path.join(work, "shared"), ids);

      const r = await runScript(script);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(await snapshotTree(host)).toEqual(hostBefore);
      expect(await exists(path.join(root, "var/lib/dhcp/dhclient.eth0.leases"))).toBe(false);
      expect(await exists(path.join(root, "etc/udev/rules.d/70-persistent-net.rules"))).toBe(false);
      expect((await fs.lstat(path.join(root, "etc/ssh/ssh_host_rsa_key"))).isFile()).toBe(true);
      expect((await fs.lstat(path.join(root, "var/lib/dbus/machine-id"))).isFile()).toBe(true);
      expect(await fs.readFile(path.join(root, "var/lib/dbus/machine-id"), "utf8")).toBe(
        `${ids.machine_id}\n`,
      );

      const snap = await snapshotTree(root);
      const r2 = await runScript(script);
      expect(r2.code).toBe(0);
      expect(r2.stdout).toContain("nothing to do");
      expect(await snapshotTree(root)).toEqual(snap);
    },
    TIMEOUT,
  );
});
