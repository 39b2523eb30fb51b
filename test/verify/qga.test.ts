/**
 * The guest agent client against a real qemu-ga, run on the host in
 * unix-listen mode (the same program and protocol as inside a guest).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import {
  readAgentView,
  rootDeviceFromMountinfo,
  sshFingerprint,
  udevProperties,
} from "../../src/verify/guest-agent.js";
import { QgaClient } from "../../src/verify/qga.js";

let dir: string;
let sock: string;
let agent: ChildProcess;

async function waitForFile(file: string, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (existsSync(file)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not appear`);
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "glint-qga-"));
  sock = path.join(dir, "qga.sock");
  agent = spawn(
    "qemu-ga",
    [
      "--method",
      "unix-listen",
      "--path",
      sock,
      "--statedir",
      dir,
      "--pidfile",
      path.join(dir, "qga.pid"),
    ],
    { stdio: "ignore" },
  );
  await waitForFile(sock, "qemu-ga's socket");
});

afterAll(async () => {
  agent?.kill("SIGTERM");
  await fs.rm(dir, { recursive: true, force: true });
});

describe("QgaClient against qemu-ga", () => {
  it("synchronises, then runs commands: the host name", async () => {
    const qga = await QgaClient.connect(sock);
    try {
      expect(await qga.execute("guest-get-host-name")).toEqual({ "host-name": os.hostname() });
    } finally {
      qga.close();
    }
  });

  it("reads a whole file of several chunks, byte for byte", async () => {
    const file = path.join(dir, "data.bin");
    const data = randomBytes(200_000);
    await fs.writeFile(file, data);
    const qga = await QgaClient.connect(sock);
    try {
      expect((await qga.readFile(file)).equals(data)).toBe(true);
    } finally {
      qga.close();
    }
  });

  it("a missing file and an unknown command are GlintErrors that name the command", async () => {
    const qga = await QgaClient.connect(sock);
    try {
      await expect(qga.readFile(path.join(dir, "missing"))).rejects.toThrow(/guest-file-open/);
      await expect(qga.execute("guest-no-such-command")).rejects.toBeInstanceOf(GlintError);
      // The session still works afterwards.
      expect(await qga.execute("guest-get-host-name")).toEqual({ "host-name": os.hostname() });
    } finally {
      qga.close();
    }
  });

  it("reads the identity view: hostname, machine-id and MACs as the system has them", async () => {
    const qga = await QgaClient.connect(sock);
    try {
      const view = await readAgentView(qga);
      expect(view.hostname).toBe(os.hostname());
      const mid = await fs.readFile("/etc/machine-id", "utf8").catch(() => undefined);
      if (mid !== undefined) expect(view.machineId).toBe(mid.trim());
      else expect(view.why.machineId).toMatch(/machine-id/);
      const macs: string[] = [];
      for (const n of await fs.readdir("/sys/class/net")) {
        const mac = (await fs.readFile(`/sys/class/net/${n}/address`, "utf8")).trim();
        if (mac !== "" && mac !== "00:00:00:00:00:00") macs.push(mac);
      }
      expect([...view.macs].sort()).toEqual([...new Set(macs)].sort());
    } finally {
      qga.close();
    }
  });

  it("no agent: a one-line GlintError within the deadline", async () => {
    await expect(QgaClient.connect(path.join(dir, "nobody.sock"), 500)).rejects.toBeInstanceOf(
      GlintError,
    );
  });
});

describe("guest file parsers", () => {
  it("the root device from mountinfo, the last mount on / winning", () => {
    const mountinfo = [
      "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
      "30 22 0:25 / /run rw - tmpfs tmpfs rw",
      "40 22 254:2 / / rw - ext4 /dev/vda2 rw",
    ].join("\n");
    expect(rootDeviceFromMountinfo(mountinfo)).toBe("254:2");
    expect(rootDeviceFromMountinfo("30 22 0:25 / /run rw - tmpfs tmpfs rw")).toBeUndefined();
  });

  it("udev properties", () => {
    const p = udevProperties(
      "S:disk/by-uuid/x\nE:ID_FS_UUID=abc\nE:ID_PART_ENTRY_UUID=def\nG:systemd\n",
    );
    expect(p.get("ID_FS_UUID")).toBe("abc");
    expect(p.get("ID_PART_ENTRY_UUID")).toBe("def");
  });

  it("SSH fingerprints match ssh-keygen -l", async () => {
    const { execFile } = await import("node:child_process");
    const key = path.join(dir, "k");
    await new Promise<void>((resolve, reject) =>
      execFile("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key], (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    const fp = await new Promise<string>((resolve, reject) =>
      execFile("ssh-keygen", ["-lf", `${key}.pub`], (e, out) =>
        e ? reject(e) : resolve(out.split(" ")[1] ?? ""),
      ),
    );
    expect(sshFingerprint(await fs.readFile(`${key}.pub`, "utf8"))).toBe(fp);
    expect(sshFingerprint("not a key")).toBeUndefined();
  });
});
