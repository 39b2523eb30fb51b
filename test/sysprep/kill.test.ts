/**
 * kill -9 at random points of sysprep (the child's whole process group, so
 * its qemu-storage-daemon dies too): the image is always either exactly as
 * before or fully re-identified, and passes fsck; the next run cleans up what
 * a killed one left (work directory, stale FUSE mounts, temp copy).
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectImage, sysprepImage } from "../../src/sysprep/index.js";
import { type DiskImage, diskImage } from "../support/disk-image.js";
import { asRaw, extract, overlay, run, sha256 } from "../support/disk-read.js";
import { identityFromSeed } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "sysprep-child.mjs");
const RUNS = 100;

let img: DiskImage;
let dir: string;
beforeAll(async () => {
  img = await diskImage({ table: "gpt" });
  dir = await tempDir("glint-sysprep-kill-");
}, 120_000);
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** Run the child, SIGKILL its process group after `ms` (if still running); true if it finished. */
function runAndKill(args: string[], ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {
        // already gone
      }
    }, ms);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      // Kill whatever is left of the group (e.g. a daemon mid-start).
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {
        // none left
      }
      if (signal === "SIGKILL") resolve(false);
      else if (code === 0 && out.includes("done")) resolve(true);
      else reject(new Error(`child failed (${code}): ${err}`));
    });
  });
}

describe("kill -9 during sysprep", () => {
  it(`leaves the image all-old or all-new and fsck-clean, over ${RUNS} runs`, async () => {
    const ov = path.join(dir, "vm.qcow2");
    await overlay(img.qcow2, ov);
    const id = identityFromSeed("killed");
    const idFile = path.join(dir, "id.json");
    await fs.writeFile(idFile, JSON.stringify(id));
    // A first, unkilled run tells how long a run takes here.
    const t0 = performance.now();
    expect(await runAndKill([ov, idFile, "killed"], 120_000)).toBe(true);
    const span = Math.max(300, Math.round(performance.now() - t0));
    let last = await sha256(ov);
    let finished = 0;
    let killed = 0;
    let checkedNew = 0;
    for (let i = 0; i < RUNS; i++) {
      const done = await runAndKill([ov, idFile, "killed"], randomInt(0, span));
      const now = await sha256(ov);
      if (done) finished++;
      else killed++;
      if (now === last) continue; // all old
      // Changed: it must be the complete new identity (a new set of SSH keys, same identity).
      const seen = await inspectImage(ov);
      expect(seen.diskGuid).toBe(id.disk_uuid);
      expect(seen.machineId).toBe(id.machine_id);
      expect(seen.hostname).toBe("killed");
      expect(seen.partitions.find((p) => p.number === 3)?.uuid).toBe(id.filesystem_uuid);
      expect(seen.partitions.find((p) => p.number === 3)?.partuuid).toBe(id.partition_uuid);
      expect(Object.keys(seen.sshHostKeys)).toHaveLength(3);
      if (checkedNew++ % 10 === 0) {
        const work = await fs.mkdtemp(path.join(dir, "fsck-"));
        const raw = await asRaw(ov, work);
        const root = img.partitions.find((p) => p.role === "root");
        if (!root) throw new Error("layout");
        await run("e2fsck", ["-fn", await extract(raw, root, work)]);
        await fs.rm(work, { recursive: true, force: true });
      }
      last = now;
    }
    expect(killed).toBeGreaterThan(RUNS / 4);
    // The killed runs' leftovers are gone after one more (complete) run.
    await sysprepImage(ov, { vmName: "killed", identifiers: id });
    const leftovers = (await fs.readdir(dir)).filter((n) => n.includes(".sysprep-"));
    expect(leftovers).toEqual([]);
    const work = (await fs.readdir(os.tmpdir())).filter((n) => n.startsWith("glint-sysprep-"));
    const mounts = await fs.readFile("/proc/self/mountinfo", "utf8");
    for (const w of work) expect(mounts.includes(path.join(os.tmpdir(), w)), w).toBe(false);
    const workDir = await fs.mkdtemp(path.join(dir, "final-"));
    const raw = await asRaw(ov, workDir);
    for (const p of img.partitions) {
      if (p.role === "root") await run("e2fsck", ["-fn", await extract(raw, p, workDir)]);
      if (p.role === "esp") await run("fsck.vfat", ["-n", await extract(raw, p, workDir)]);
    }
    const { stdout } = await run("sgdisk", ["-v", raw]);
    expect(stdout).toMatch(/No problems found/);
    expect(finished + killed).toBe(RUNS);
  }, 300_000);
});
