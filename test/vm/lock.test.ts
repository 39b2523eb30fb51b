/** Crash-safe locks: busy while the holder lives, taken over when it is gone, mutual exclusion across processes. */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BusyError } from "../../src/errors.js";
import { acquireLock, withLock } from "../../src/vm/lock.js";
import { fillDisk, mountTmpfs } from "../support/hostile.js";
import { ROOT } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await tempDir("glint-lock-");
});
afterEach(async () => {
  for (const c of children.splice(0))
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** Start time of a process as the lock records it (field 22 of /proc/PID/stat). */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}

function lockBody(pid: number, start: string, purpose = "someone else"): string {
  return JSON.stringify({
    pid,
    start,
    token: randomBytes(8).toString("hex"),
    purpose,
    since: new Date().toISOString(),
  });
}

/** A child process that stays alive until killed. */
async function liveChild(): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve, reject) => child.once("spawn", resolve).once("error", reject));
  if (child.pid === undefined) throw new Error("no pid");
  return child as ChildProcess & { pid: number };
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn("true", [], { stdio: "ignore" });
  const pid = child.pid;
  await new Promise((resolve) => child.once("exit", resolve));
  if (pid === undefined) throw new Error("no pid");
  expect(() => process.kill(pid, 0)).toThrow();
  return pid;
}

async function busyError(p: Promise<unknown>): Promise<BusyError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(BusyError);
    return error as BusyError;
  }
  throw new Error("expected a BusyError");
}

describe("acquireLock", () => {
  it("writes an owner record and removes the file on release", async () => {
    const file = path.join(dir, "sub", "a.lock");
    const lock = await acquireLock(file, { purpose: "testing" });
    const owner = JSON.parse(await fs.readFile(file, "utf8"));
    expect(owner.pid).toBe(process.pid);
    expect(owner.purpose).toBe("testing");
    expect(owner.start).toBe(startOf(process.pid));
    expect(owner.token).toMatch(/^[0-9a-f]{16}$/);
    await lock.release();
    await expect(fs.access(file)).rejects.toThrow();
    // Nothing else is left behind (no .new or .takeover files).
    expect(await fs.readdir(path.dirname(file))).toEqual([]);
  });

  it("is busy while this (live) process holds it, and free after release", async () => {
    const file = path.join(dir, "a.lock");
    const lock = await acquireLock(file, { purpose: "first" });
    const e = await busyError(acquireLock(file, { purpose: "second" }));
    expect(e.message).toContain(String(process.pid));
    expect(e.message).toContain("first");
    expect(e.exitCode).toBe(1);
    const named = await busyError(acquireLock(file, { purpose: "second", vm: "web-1" }));
    expect(named.message).toBe(`VM "web-1" is busy: process ${process.pid} holds it for "first"`);
    expect(named.code).toBe("busy");
    expect(named.details).toMatchObject({ vm: "web-1", pid: process.pid, purpose: "first" });
    await lock.release();
    const again = await acquireLock(file, { purpose: "second" });
    await again.release();
  });

  it("is busy while a live child process holds it", async () => {
    const child = await liveChild();
    const file = path.join(dir, "a.lock");
    const body = lockBody(child.pid, startOf(child.pid), "glint run");
    await fs.writeFile(file, body);
    const e = await busyError(acquireLock(file, { purpose: "me" }));
    expect(e.message).toContain(String(child.pid));
    expect(e.message).toContain("glint run");
    expect(await fs.readFile(file, "utf8")).toBe(body);
    // Once the holder dies, its lock is stale and is taken over.
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    const lock = await acquireLock(file, { purpose: "me" });
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
  });

  it("takes over a lock whose owner is dead", async () => {
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, lockBody(await deadPid(), "12345"));
    const lock = await acquireLock(file, { purpose: "me" });
    const owner = JSON.parse(await fs.readFile(file, "utf8"));
    expect(owner.pid).toBe(process.pid);
    expect(owner.purpose).toBe("me");
    await lock.release();
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("takes over a lock whose pid was reused by another process (start time differs)", async () => {
    const child = await liveChild();
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, lockBody(child.pid, "1"));
    const lock = await acquireLock(file, { purpose: "me" });
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
  });

  it.each([
    ["garbage", "not json at all"],
    ["empty", ""],
    ["JSON without a pid", '{"purpose":"x"}'],
    ["truncated JSON", '{"pid": 1'],
  ])("takes over a lock file holding %s", async (_what, content) => {
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, content);
    const lock = await acquireLock(file, { purpose: "me" });
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
  });

  it("takes over a stale lock even when a killed taker left its guard behind", async () => {
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, lockBody(await deadPid(), ""));
    const guard = `${file}.takeover`;
    await fs.mkdir(guard);
    const old = new Date(Date.now() - 60_000);
    await fs.utimes(guard, old, old);
    const lock = await acquireLock(file, { purpose: "me" });
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("backs off (does not spin) while another taker's guard is in place, then takes over", async () => {
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, lockBody(await deadPid(), ""));
    const guard = `${file}.takeover`;
    await fs.mkdir(guard);
    // A guard expires after 10 s; make this one 8.5 s old so the test waits ~1.5 s.
    const old = new Date(Date.now() - 8_500);
    await fs.utimes(guard, old, old);
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    const lock = await acquireLock(file, { purpose: "me" });
    const cpu = process.cpuUsage(cpu0);
    const wall = Date.now() - t0;
    expect(wall).toBeGreaterThanOrEqual(1_000);
    // Polling, not a hot loop: well under a third of a CPU while waiting.
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(wall / 3);
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
  });

  it("waits up to waitMs for a live holder", async () => {
    const file = path.join(dir, "a.lock");
    const first = await acquireLock(file, { purpose: "first" });
    const t0 = Date.now();
    setTimeout(() => void first.release(), 300);
    const second = await acquireLock(file, { purpose: "second", waitMs: 10_000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await second.release();

    const third = await acquireLock(file, { purpose: "third" });
    const t1 = Date.now();
    await busyError(acquireLock(file, { purpose: "fourth", waitMs: 200 }));
    const waited = Date.now() - t1;
    expect(waited).toBeGreaterThanOrEqual(190);
    expect(waited).toBeLessThan(5_000);
    await third.release();
  });

  it("release() leaves a lock that someone else now owns", async () => {
    const file = path.join(dir, "a.lock");
    const lock = await acquireLock(file, { purpose: "me" });
    const other = lockBody(process.pid, "", "other");
    await fs.writeFile(file, other);
    await lock.release();
    expect(await fs.readFile(file, "utf8")).toBe(other);
  });

  it("withLock releases the lock when the function throws", async () => {
    const file = path.join(dir, "a.lock");
    await expect(
      withLock(file, { purpose: "x" }, async () => {
        await fs.access(file);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    await expect(fs.access(file)).rejects.toThrow();
    expect(await withLock(file, { purpose: "y" }, async () => 42)).toBe(42);
  });

  it("serialises concurrent acquirers in one process", async () => {
    const file = path.join(dir, "a.lock");
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        withLock(file, { purpose: `w${i}`, waitMs: 20_000 }, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, 5));
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});

describe("mutual exclusion across processes", () => {
  it("N children doing read-modify-write under the lock never lose an update", async () => {
    const N = 6;
    const ITER = 15;
    const file = path.join(dir, "counter.lock");
    const counter = path.join(dir, "counter");
    const log = path.join(dir, "log");
    await fs.writeFile(counter, "0");
    await fs.writeFile(log, "");
    const script = path.join(ROOT, "test", "support", "lock-child.mjs");
    const codes = await Promise.all(
      Array.from(
        { length: N },
        () =>
          new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
            const child = spawn(process.execPath, [script, file, counter, log, String(ITER)], {
              stdio: ["ignore", "ignore", "pipe"],
            });
            children.push(child);
            let stderr = "";
            child.stderr?.setEncoding("utf8").on("data", (d: string) => {
              stderr += d;
            });
            child.on("error", reject);
            child.on("close", (code) => resolve({ code, stderr }));
          }),
      ),
    );
    for (const c of codes) expect(c, c.stderr).toEqual({ code: 0, stderr: "" });
    expect(Number(await fs.readFile(counter, "utf8"))).toBe(N * ITER);
    // The log alternates enter/exit of the same pid: no two critical sections overlapped.
    const entries = (await fs.readFile(log, "utf8")).trim().split("\n");
    expect(entries).toHaveLength(2 * N * ITER);
    const pids = new Set<string>();
    for (let i = 0; i < entries.length; i += 2) {
      const [enter, pid] = (entries[i] ?? "").split(" ");
      expect(enter).toBe("enter");
      expect(entries[i + 1]).toBe(`exit ${pid}`);
      pids.add(pid ?? "");
    }
    expect(pids.size).toBe(N);
    // The lock is free again and nothing was left behind.
    expect((await fs.readdir(dir)).sort()).toEqual(["counter", "log"]);
  });
});

describe("leftovers", () => {
  it("a full disk leaves no `.new` file behind, and the error names the lock", async () => {
    const disk = await mountTmpfs("64k");
    try {
      const file = path.join(disk.dir, "vms", "a.lock");
      await fs.mkdir(path.dirname(file));
      await fillDisk(disk.dir);
      await expect(acquireLock(file, { purpose: "me" })).rejects.toThrow(
        new RegExp(`no space left on the device while writing ${file}`),
      );
      expect(await fs.readdir(path.dirname(file))).toEqual([]);
    } finally {
      await disk.unmount();
    }
  });

  it("a takeover guard left by a dead process does not stall the next taker", async () => {
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, lockBody(await deadPid(), ""));
    // The guard a taker killed mid-takeover leaves: fresh, naming its (dead) owner.
    await fs.writeFile(`${file}.takeover`, lockBody(await deadPid(), ""));
    const t0 = Date.now();
    const lock = await acquireLock(file, { purpose: "me" });
    // The old guard expired only after 10 s.
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("a takeover guard held by a live process is waited for, and taken once it dies", async () => {
    const file = path.join(dir, "a.lock");
    await fs.writeFile(file, lockBody(await deadPid(), ""));
    const taker = await liveChild();
    await fs.writeFile(`${file}.takeover`, lockBody(taker.pid, startOf(taker.pid)));
    let acquired = false;
    const pending = acquireLock(file, { purpose: "me" }).then((lock) => {
      acquired = true;
      return lock;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(acquired).toBe(false);
    taker.kill("SIGKILL");
    const lock = await pending;
    expect(JSON.parse(await fs.readFile(file, "utf8")).pid).toBe(process.pid);
    await lock.release();
  });
});
