/**
 * Reliability regressions at the CLI: a QEMU that outlives its `glint run`
 * still protects its VM; `-daemonize` is refused; `show` and `list` tell an
 * interrupted operation from a running one; SIGTERM is not deferred while
 * nothing is being committed; errors carry stable codes under `--json`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeEach, describe, expect, it } from "vitest";
import { UuidManager } from "../../src/manager.js";
import { vmPaths } from "../../src/vm/layout.js";
import { acquireLock } from "../../src/vm/lock.js";
import { runCli } from "../support/cli.js";
import { leaveJournal } from "../support/journal.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-reliab-");
});

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("errors have stable codes", () => {
  it("`glint show nosuch --json` prints exactly one JSON error object with code not-found", async () => {
    const r = await runCli(["show", "nosuch", "--json", "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines.length).toBe(1);
    const parsed = JSON.parse(lines[0] ?? "");
    expect(parsed.error.code).toBe("not-found");
    expect(parsed.error.message).toMatch(/VM "nosuch" has no identifiers/);
  });

  it("a usage error under --json is one JSON object with code usage and exit 2", async () => {
    const r = await runCli(["create", "Bad_Name", "--json", "--home", home]);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr.trim()).error.code).toBe("usage");
  });

  it("without --json the advice is on the same single line", async () => {
    const r = await runCli(["show", "nosuch", "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `glint: VM "nosuch" has no identifiers in ${home}; create it with \`glint create nosuch\`\n`,
    );
  });
});

describe("a QEMU that outlives its glint run", () => {
  it("keeps the VM protected: nuke refuses and changes nothing while it runs", async () => {
    expect((await runCli(["create", "r", "--home", home])).code).toBe(0);
    const before = await fs.readFile(vmPaths(home, "r").identifiers, "utf8");
    const glint = spawn(
      process.execPath,
      [CLI, "run", "r", "--home", home, "--", "-display", "none", "-S", "-accel", "tcg"],
      { stdio: "ignore", detached: true },
    );
    const qemuPidfile = vmPaths(home, "r").pidfile;
    await waitFor(() => existsSync(qemuPidfile), "QEMU's pidfile");
    const qemuPid = Number((await fs.readFile(qemuPidfile, "utf8")).trim());
    try {
      // glint dies (kill -9); its QEMU is orphaned but still runs.
      const gone = exited(glint);
      glint.kill("SIGKILL");
      await gone;
      const r = await runCli(["nuke", "r", "--yes", "--home", home]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`VM "r" is running: QEMU process ${qemuPid}`));
      expect(await fs.readFile(vmPaths(home, "r").identifiers, "utf8")).toBe(before);
      const again = await runCli(["run", "r", "--home", home, "--", "-display", "none", "-S"]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/is running/);
    } finally {
      process.kill(qemuPid, "SIGKILL");
    }
    await waitFor(async () => {
      try {
        process.kill(qemuPid, 0);
        return false;
      } catch {
        return true;
      }
    }, "QEMU to exit");
    const r = await runCli(["regen", "base", "r", "--yes", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("-daemonize is refused with one line and exit 2", async () => {
    expect((await runCli(["create", "d", "--home", home])).code).toBe(0);
    const r = await runCli(["run", "d", "--home", home, "--", "-daemonize"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^glint: .*-daemonize is not supported\n$/);
  });
});

describe("show and list while an operation is pending", () => {
  it("tell an interrupted operation from one that is still running", async () => {
    const m = new UuidManager({ home });
    await m.createVm("p");
    await leaveJournal(vmPaths(home, "p"), "nuke", "committing");
    const show = await runCli(["show", "p", "--home", home]);
    expect(show.code).toBe(1);
    expect(show.stderr).toMatch(/has an interrupted `glint nuke`; run `glint script p`/);
    const list = await runCli(["list", "--home", home]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/p .*interrupted `glint nuke`/);
    // The same journal while a live process holds the VM: it is running, not interrupted.
    const lock = await acquireLock(vmPaths(home, "p").lock, { purpose: "glint nuke" });
    try {
      const busy = await runCli(["show", "p", "--json", "--home", home]);
      expect(busy.code).toBe(1);
      const err = JSON.parse(busy.stderr).error;
      expect(err.code).toBe("busy");
      expect(err.message).toMatch(/is busy: process \d+ is changing it \("glint nuke"\)/);
      const args = await runCli(["qemu-args", "p", "--home", home]);
      expect(args.stderr).not.toMatch(/interrupted/);
    } finally {
      await lock.release();
    }
  });
});

describe("signals", () => {
  it("SIGTERM while waiting for the store lock ends glint at once (exit 143), changing nothing", async () => {
    expect((await runCli(["create", "s", "--home", home])).code).toBe(0);
    const before = await fs.readFile(vmPaths(home, "s").identifiers, "utf8");
    const store = await acquireLock(path.join(home, ".glint", "store.lock"), { purpose: "test" });
    try {
      const child = spawn(process.execPath, [CLI, "regen", "base", "s", "--yes", "--home", home], {
        stdio: "ignore",
      });
      const done = exited(child);
      await waitFor(() => existsSync(vmPaths(home, "s").lock), "glint to take the VM lock");
      child.kill("SIGTERM");
      // Without the fix it waits for the store lock (30 s or more) before exiting.
      const result = await Promise.race([done, sleep(15_000).then(() => "still running")]);
      expect(result).toEqual({ code: 143, signal: null });
    } finally {
      await store.release();
    }
    expect(await fs.readFile(vmPaths(home, "s").identifiers, "utf8")).toBe(before);
    expect((await runCli(["regen", "base", "s", "--yes", "--home", home])).code).toBe(0);
  });
});
