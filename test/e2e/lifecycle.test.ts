/**
 * `glint start`, `status`, `stop` and `rm` against the real tiny guest
 * (TCG): the guest boots in the background with its serial console in
 * console.log; `glint console` attaches to it; status says running; rm is refused while it runs; stop
 * (the busybox guest ignores the ACPI power button, so after --timeout)
 * stops it; then rm deletes it.
 */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli as glint, runCliOk as glintOk, readIds } from "../support/cli.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";

let home: string;
let guest: TinyGuest;
beforeAll(async () => {
  home = await tempDir("glint-lifecycle-");
  guest = await tinyGuest();
  await glintOk(["create", "lc", "--home", home]);
}, 300_000);
afterAll(async () => {
  // Never leave a QEMU behind, whatever failed.
  await glint(["stop", "lc", "--force", "--home", home]);
});

async function consoleHas(text: string, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let log = "";
  while (Date.now() < deadline) {
    log = await fs.readFile(path.join(home, "lc", "console.log"), "utf8").catch(() => "");
    if (log.includes(text)) return log;
    await new Promise((r) => setTimeout(r, 500));
  }
  return log;
}

describe("the VM lifecycle", () => {
  it("start → status → console output → rm refused → stop → rm", async () => {
    const started = await glint([
      "start",
      "lc",
      "--accel",
      "tcg",
      "--json",
      "--home",
      home,
      "--",
      "-kernel",
      guest.kernel,
      "-initrd",
      guest.initrd,
      "-append",
      // glint.hook=/bin/sh: after its checks the guest waits in a shell
      // (no input reaches it) instead of powering off.
      "console=ttyS0 panic=-1 glint.hook=/bin/sh",
      "-no-reboot",
    ]);
    expect(started.code, started.stderr).toBe(0);
    const info = JSON.parse(started.stdout) as { pid: number; console: string };
    expect(info.console).toBe(path.join(home, "lc", "console.log"));

    const status = JSON.parse(await glintOk(["status", "lc", "--json", "--home", home])) as {
      vm: string;
      result: { state: string; pid: number };
    }[];
    expect(status[0]).toMatchObject({ vm: "lc", result: { state: "running", pid: info.pid } });
    expect(await glintOk(["list", "--home", home])).toMatch(/^lc\s+running\s/m);

    // The guest's serial console: it reports the identity Glint gave it.
    const ids = await readIds(home, "lc");
    const log = await consoleHas("GLINT:mac:", 240_000);
    expect(log).toContain("GLINT:mac:");
    expect(log.toLowerCase()).toContain(ids.vm_uuid.toLowerCase());

    // glint console attaches to the serial console: the guest's shell answers.
    const attached = spawn(process.execPath, [CLI, "console", "lc", "--home", home], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let seen = "";
    attached.stdout.setEncoding("utf8").on("data", (d: string) => {
      seen += d;
    });
    const answered = new Promise<void>((resolve) => {
      attached.stdout.on("data", () => {
        if (seen.includes("hi-42")) resolve();
      });
    });
    attached.stdin.write("echo hi-$((6*7))\n");
    await answered;
    attached.kill("SIGTERM");
    expect(seen).toContain("hi-42");

    const rm = await glint(["rm", "lc", "--yes", "--home", home]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toMatch(/busy|running/);
    await fs.access(path.join(home, "lc", "identifiers.json"));

    const stopped = await glint(["stop", "lc", "--timeout", "3", "--home", home]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/^lc: stopped \(/);
    expect(await glintOk(["status", "lc", "--home", home])).toBe("lc: stopped\n");

    await glintOk(["rm", "lc", "--yes", "--home", home]);
    expect((await fs.readdir(home)).filter((n) => !n.startsWith("."))).toEqual([]);
  }, 400_000);
});
