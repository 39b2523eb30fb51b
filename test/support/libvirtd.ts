/**
 * A real, privileged libvirtd for the tests, in the test's own directories:
 * `unshare --mount` runs test/support/libvirtd-ns.sh, which bind-mounts the
 * temp directory's etc/, lib/, run/, cache/ and log/ over libvirt's system
 * paths in that private mount namespace only, then execs libvirtd with a
 * qemu.conf that runs QEMU and swtpm as root without a security driver. No
 * systemd service is used or touched. The URI names its socket
 * (`qemu+unix:///system?socket=…`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { run } from "./exec.js";
import { ROOT } from "./paths.js";
import { tempDir } from "./tmp.js";

export interface Libvirtd {
  readonly uri: string;
  /** The temp root; `lib/` is /var/lib/libvirt inside the daemon's namespace. */
  readonly root: string;
  /** Where this daemon keeps emulated TPM state, as seen from outside (GLINT_LIBVIRT_SWTPM_DIR). */
  readonly swtpmDir: string;
  /** `virsh -c URI args…` that must succeed; resolves to stdout. */
  virsh(args: readonly string[]): Promise<string>;
  /** Destroy every running domain, then stop the daemon. */
  stop(): Promise<void>;
}

const LIBVIRTD_CONF = `unix_sock_dir = "/run/libvirt"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
`;

const QEMU_CONF = `user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
swtpm_user = "root"
swtpm_group = "root"
stdio_handler = "file"
`;

export async function startLibvirtd(): Promise<Libvirtd> {
  for (const tool of ["/usr/sbin/libvirtd", "/usr/bin/virsh", "/usr/bin/unshare"]) {
    if (!existsSync(tool)) {
      throw new Error(
        `${tool} is missing: run scripts/host-packages.sh (libvirt-daemon-system, libvirt-clients)`,
      );
    }
  }
  const root = await tempDir("glint-libvirtd-");
  for (const d of ["etc", "lib", "run", "cache", "log", "swtpmlog"]) {
    await fs.mkdir(path.join(root, d), { recursive: true });
  }
  await fs.writeFile(path.join(root, "etc", "libvirtd.conf"), LIBVIRTD_CONF);
  await fs.writeFile(path.join(root, "etc", "qemu.conf"), QEMU_CONF);
  const socket = path.join(root, "run", "libvirt-sock");
  const uri = `qemu+unix:///system?socket=${socket}`;
  let log = "";
  const child: ChildProcess = spawn(
    "unshare",
    ["--mount", "--", path.join(ROOT, "test", "support", "libvirtd-ns.sh"), root],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout?.on("data", (c) => {
    log += String(c);
  });
  child.stderr?.on("data", (c) => {
    log += String(c);
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const virsh = async (args: readonly string[]): Promise<string> => {
    const r = await run("virsh", ["-c", uri, ...args], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`libvirtd exited at start:\n${log}`);
    if (existsSync(socket)) {
      const r = await run("virsh", ["-c", uri, "version"], { timeoutMs: 30_000 });
      if (r.code === 0) break;
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`libvirtd did not answer on ${socket} within 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    uri,
    root,
    swtpmDir: path.join(root, "lib", "swtpm"),
    virsh,
    async stop() {
      if (child.exitCode === null) {
        const names = (await virsh(["list", "--name"]).catch(() => ""))
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l !== "");
        for (const name of names) await virsh(["destroy", name]).catch(() => undefined);
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
}
