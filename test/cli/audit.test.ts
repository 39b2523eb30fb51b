/**
 * The audit log through the CLI: every state change appends one record
 * (create, regen, nuke, reset, edit, rm), `glint audit` reads and filters
 * them; 32 concurrent processes give one valid chain without gaps; and a
 * `glint regen base` killed with SIGKILL at random moments, followed by
 * recovery, leaves exactly one record per identity change.
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/index.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

async function records(home: string, ...args: string[]): Promise<AuditRecord[]> {
  return JSON.parse(await runCliOk(["audit", ...args, "--json", "--home", home])) as AuditRecord[];
}

async function verified(home: string): Promise<number> {
  const r = await runCli(["audit", "verify", "--json", "--home", home]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { records: number }).records;
}

describe("glint audit", () => {
  it("records every state change with who, what and old → new, and filters by VM and time", async () => {
    const home = await tempDir("glint-audit-cli-");
    const g = (...args: string[]) => runCliOk([...args, "--home", home]);
    await g("create", "a", "--firmware", "uefi", "--tpm");
    await g("create", "b");
    const before = await readIds(home, "a");
    await g("regen", "disk", "a", "--yes");
    await g("nuke", "a", "--yes");
    await g("reset", "uefi", "a", "--yes");
    await g("reset", "tpm", "a", "--yes");
    await g("edit", "a", "--cpus", "3", "--yes");
    await g("rm", "b", "--yes");
    const all = await records(home);
    expect(all.map((r) => `${r.operation} ${r.vm}`)).toEqual([
      "create a",
      "create b",
      "regen-disk a",
      "nuke a",
      "reset-uefi a",
      "reset-tpm a",
      "edit a",
      "rm b",
    ]);
    expect(all.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const [create, , regen] = all;
    expect(create?.changes.vm_uuid).toEqual({ old: null, new: before.vm_uuid });
    expect(create?.command).toBe(`glint create a --firmware uefi --tpm --home ${home}`);
    expect(create).toMatchObject({ uid: process.getuid?.(), pid: expect.any(Number) });
    expect(typeof create?.host).toBe("string");
    // `regen disk` keeps vm_uuid: only what changed is recorded.
    expect(regen?.changes.vm_uuid).toBeUndefined();
    expect(regen?.changes.disk_uuid?.old).toBe(before.disk_uuid);
    expect(all[5]?.changes.tpm_state_sha256?.new).toMatch(/^[0-9a-f]{64}$/);
    expect(all[6]?.changes.cpus).toEqual({ old: 1, new: 3 });
    expect(await verified(home)).toBe(8);

    expect((await records(home, "b")).map((r) => r.operation)).toEqual(["create", "rm"]);
    expect(await records(home, "--since", "2999-01-01")).toEqual([]);
    expect(await records(home, "--since", "1h")).toHaveLength(8);
    const text = await g("audit", "a");
    expect(text).toContain("reset-tpm a");
    expect(text).toMatch(/cpus\s+1 → 3/);

    const bad = await runCli(["audit", "--since", "yesterday", "--home", home]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("--since");
  });

  it("32 concurrent operations (processes) give one valid chain with no gaps", async () => {
    const home = await tempDir("glint-audit-32-");
    const runs = await Promise.all(
      Array.from({ length: 32 }, (_, i) => runCli(["create", `c${i}`, "--home", home])),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const all = await records(home);
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    expect(new Set(all.map((r) => r.vm)).size).toBe(32);
    expect(new Set(all.map((r) => r.pid)).size).toBe(32);
    expect(await verified(home)).toBe(32);
  }, 180_000);
});

/** Spawn `glint regen base vm`, SIGKILL it after `delayMs`; resolves with how it ended. */
function regenAndKill(home: string, delayMs: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "regen", "base", "vm", "--yes", "--home", home], {
      stdio: "ignore",
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    child.on("error", reject);
    child.on("exit", (_code, signal) => {
      clearTimeout(timer);
      resolve(signal);
    });
  });
}

describe("kill -9 mid-operation, then recovery", () => {
  it("leaves exactly one record per identity change, never one without its change", async () => {
    const home = await tempDir("glint-audit-kill-");
    await runCliOk(["create", "vm", "--home", home]);
    const t0 = Date.now();
    await runCliOk(["regen", "base", "vm", "--yes", "--home", home]);
    const maxDelay = Math.max(150, Date.now() - t0 + 50);
    let killed = 0;
    const started = Date.now();
    for (let i = 0; i < 30 && Date.now() - started < 45_000; i++) {
      if ((await regenAndKill(home, randomInt(0, maxDelay))) === "SIGKILL") killed++;
    }
    expect(killed).toBeGreaterThan(0);
    // Recovery: the next operation finishes or rolls back what was interrupted.
    await runCliOk(["regen", "base", "vm", "--yes", "--home", home]);
    const final = (await readIds(home, "vm")).generation;
    const generations = (await records(home, "vm")).map((r) => r.changes.generation?.new);
    // One record per generation the VM went through: none missing, none twice.
    expect(generations).toEqual(Array.from({ length: final }, (_, i) => i + 1));
    expect(await verified(home)).toBe(final);
    const pending = await fs.readdir(path.join(home, "vm"));
    expect(pending).not.toContain(".pending.json");
  }, 180_000);
});
