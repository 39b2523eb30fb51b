/**
 * Crash safety: `glint regen base` is killed with SIGKILL at random moments.
 * After every kill identifiers.json must still be a complete, valid identity
 * (old or new, never partial), and the next run must take over the stale
 * locks and succeed.
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { CLI, ROOT } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

// The project's own parser, as built (the same code the CLI runs).
const model = (await import(
  pathToFileURL(path.join(ROOT, "dist", "identity", "model.js")).href
)) as typeof import("../../src/identity/model.js");

const ITERATIONS = 40;
const BUDGET_MS = 40_000;

let home: string;
let file: string;
beforeAll(async () => {
  home = await tempDir("glint-fault-");
  const r = await runCli(["create", "vm", "--home", home]);
  expect(r.code, r.stderr).toBe(0);
  file = path.join(home, "vm", "identifiers.json");
});

/** Spawn `glint regen base vm`, SIGKILL it after `delayMs`; resolves with how it ended. */
function regenAndKill(delayMs: number): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "regen", "base", "vm", "--yes", "--home", home], {
      stdio: "ignore",
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

function loadIdentity(raw: string) {
  const ids = model.parseIdentifiers(JSON.parse(raw), file);
  for (const f of model.IDENTIFIER_FIELDS) expect(typeof ids[f]).toBe("string");
  return ids;
}

describe("kill -9 during `glint regen base`", () => {
  it("never leaves a partial identifiers.json, and the next run succeeds", async () => {
    // How long a complete run takes here, so kills land all over it.
    const t0 = Date.now();
    const full = await runCli(["regen", "base", "vm", "--yes", "--home", home]);
    expect(full.code, full.stderr).toBe(0);
    const maxDelay = Math.max(150, Date.now() - t0 + 50);

    const started = Date.now();
    let previous = loadIdentity(await fs.readFile(file, "utf8"));
    let killed = 0;
    let changedWhileKilled = 0;
    let iterations = 0;
    for (; iterations < ITERATIONS && Date.now() - started < BUDGET_MS; iterations++) {
      const end = await regenAndKill(randomInt(0, maxDelay));
      if (end.signal === "SIGKILL") killed++;
      else expect(end.code).toBe(0);
      const raw = await fs.readFile(file, "utf8");
      const ids = loadIdentity(raw);
      // Either the old identity or a newer one; never older, never a mix.
      expect(ids.generation).toBeGreaterThanOrEqual(previous.generation);
      if (ids.generation === previous.generation) expect(ids).toEqual(previous);
      else if (end.signal === "SIGKILL") changedWhileKilled++;
      previous = ids;
    }
    expect(iterations).toBeGreaterThanOrEqual(10);
    expect(killed).toBeGreaterThan(0);
    const temps = (await fs.readdir(path.join(home, "vm"))).filter((n) => n.includes(".tmp-"));
    console.info(
      `fault: ${iterations} runs, ${killed} killed (${changedWhileKilled} after the new identity was written), delays 0–${maxDelay} ms, ${temps.length} temp files left by killed writers`,
    );

    // The next run takes over whatever stale locks the killed runs left, and
    // first finishes a regeneration that a kill interrupted while committing
    // (its journal), or rolls back one that had not started committing.
    const journal = path.join(home, "vm", ".pending.json");
    const pending = await fs
      .readFile(journal, "utf8")
      .then((raw) => JSON.parse(raw) as { stage?: string; identifiers: unknown })
      .catch(() => undefined);
    if (pending) {
      expect(model.parseIdentifiers(pending.identifiers).generation).toBe(previous.generation + 1);
    }
    const interrupted = pending?.stage === "committing";
    const after = await runCli(["regen", "base", "vm", "--yes", "--home", home]);
    expect(after.code, after.stderr).toBe(0);
    const final = loadIdentity(await fs.readFile(file, "utf8"));
    expect(final.generation).toBe(previous.generation + (interrupted ? 2 : 1));
    await expect(fs.access(journal)).rejects.toThrow();
    const show = await runCli(["show", "vm", "--json", "--home", home]);
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toEqual({ ...final });

    // Every archived identity is complete too (archives are written atomically),
    // and every generation that was replaced was archived first.
    const history = await runCli(["history", "vm", "--json", "--home", home]);
    expect(history.code, history.stderr).toBe(0);
    const entries = JSON.parse(history.stdout) as { identifiers: unknown; error: unknown }[];
    for (const e of entries) {
      expect(e.error).toBeNull();
      expect(e.identifiers).not.toBeNull();
    }
    expect(entries.length).toBeGreaterThanOrEqual(final.generation - 1);

    // No lock is left held.
    const left = (await fs.readdir(path.join(home, ".glint"), { recursive: true })).filter((n) =>
      n.endsWith(".lock"),
    );
    expect(left).toEqual([]);
  }, 120_000);

  it("the next run removes temp files that a killed writer left in the VM directory", async () => {
    const child = spawn("true", [], { stdio: "ignore" });
    const dead = child.pid ?? 0;
    await new Promise((r) => child.once("exit", r));
    const stale = path.join(home, "vm", `.identifiers.json.tmp-${dead}-0123abcd`);
    await fs.writeFile(stale, '{"vm_uuid": "half-writ');
    const r = await runCli(["regen", "disk", "vm", "--yes", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    loadIdentity(await fs.readFile(file, "utf8"));
    // atomic.ts names temps so that removeStaleTemps() can clean them; someone must call it.
    await expect(fs.access(stale)).rejects.toThrow();
  });
});
