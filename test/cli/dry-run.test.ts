/**
 * `run --dry-run` prints commands that work as printed: with a comma in the
 * home path, the swtpm command (whose option lists cannot escape a comma)
 * still starts a real swtpm on the VM's TPM state and socket.
 */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let root: string;
let home: string;
beforeAll(async () => {
  root = await tempDir("glint-dry-run-");
  home = path.join(root, "a,b", "home");
  const r = await runCli(["create", "vm", "--tpm", "--home", home]);
  expect(r.code, r.stderr).toBe(0);
});

/** Run `argv` in `cwd` until `socket` appears; resolves to whether it did. */
async function startsSocket(argv: string[], cwd: string, socket: string): Promise<boolean> {
  const [bin = "", ...args] = argv;
  // Its own process group, so that a shell and the swtpm it starts are killed together.
  const child = spawn(bin, args, { cwd, stdio: ["ignore", "ignore", "pipe"], detached: true });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    for (let i = 0; i < 200 && child.exitCode === null; i++) {
      if ((await fs.lstat(socket).catch(() => undefined))?.isSocket()) return true;
      await Promise.race([exited, new Promise((r) => setTimeout(r, 25))]);
    }
    if (child.exitCode !== null) throw new Error(`swtpm exited ${child.exitCode}: ${stderr}`);
    return false;
  } finally {
    if (child.exitCode === null && child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    await exited;
    await fs.rm(socket, { force: true });
  }
}

describe("run --dry-run with a comma in the home path", () => {
  it("--json gives a swtpm command and directory that start swtpm on the VM's socket", async () => {
    const r = await runCli(["run", "vm", "--dry-run", "--json", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { swtpm: string[]; swtpm_cwd?: string; qemu: string[] };
    const socket = path.join(home, "vm", "swtpm.sock");
    expect(await startsSocket(out.swtpm, out.swtpm_cwd ?? process.cwd(), socket)).toBe(true);
    // QEMU's own option lists escape the comma by doubling it.
    expect(out.qemu.join(" ")).toContain(`path=${socket.replaceAll(",", ",,")}`);
  });

  it("the text form runs under sh as printed", async () => {
    const r = await runCli(["run", "vm", "--dry-run", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    const first = r.stdout.split("\n")[0] ?? "";
    expect(first).toMatch(/ &$/);
    const socket = path.join(home, "vm", "swtpm.sock");
    // Run the printed swtpm line in the foreground (without its trailing `&`).
    const line = first.replace(/ &$/, "");
    expect(await startsSocket(["sh", "-c", line], root, socket)).toBe(true);
  });
});
