/**
 * kill -9 of a bulk `regen base` / `nuke --all --jobs 2` midway: every VM
 * has either its old identity or a whole new one (never a partial file), a
 * VM cut off mid-operation is finished or rolled back by the next command,
 * and afterwards no value is held twice and the registry agrees with the files.
 */
import { spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { parseIdentifiers } from "../../src/identity/model.js";
import { runCli, runCliOk } from "../support/cli.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

const VMS = ["k1", "k2", "k3", "k4", "k5", "k6"];

async function generations(home: string): Promise<number[]> {
  return Promise.all(
    VMS.map(async (vm) => {
      const raw = await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8");
      return parseIdentifiers(JSON.parse(raw)).generation;
    }),
  );
}

for (const command of [
  ["regen", "base"],
  ["nuke", "--jobs", "2"],
]) {
  describe(`kill -9 during \`glint ${command.join(" ")} --all\``, () => {
    it("leaves every VM old or new, and the next command recovers", async () => {
      const home = path.join(await tempDir("glint-bulk-kill-"), "home");
      for (const vm of VMS) {
        await runCliOk(["create", vm, "--nics", "2", "--no-sysprep", "--home", home]);
      }
      const before = new Map<string, string>();
      for (const vm of VMS) {
        before.set(vm, await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"));
      }
      const child = spawn(process.execPath, [CLI, "--home", home, ...command, "--all", "--yes"], {
        detached: true,
        stdio: "ignore",
      });
      const exited = new Promise((resolve) => child.on("exit", resolve));
      // Midway: once at least one VM has its new identity and not all do.
      let killedMidway = false;
      for (let i = 0; i < 600 && child.exitCode === null; i++) {
        const done = (await generations(home)).filter((g) => g === 2).length;
        if (done >= 1 && done < VMS.length) {
          process.kill(-(child.pid ?? 0), "SIGKILL");
          killedMidway = true;
          break;
        }
        await sleep(20);
      }
      await exited;
      expect(killedMidway, "the bulk command was killed before it finished").toBe(true);

      // Every VM: a whole identity, the old one or a new generation.
      const gens = await generations(home);
      expect(gens.every((g) => g === 1 || g === 2)).toBe(true);
      expect(gens.filter((g) => g === 1).length).toBeGreaterThan(0);
      for (const [i, vm] of VMS.entries()) {
        const now = await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8");
        if (gens[i] === 1) expect(now, vm).toBe(before.get(vm));
      }

      // The next command finishes or rolls back whatever was cut off.
      const again = await runCli(["--home", home, ...command, "--all", "--yes", "--json"]);
      expect(again.code, again.stderr).toBe(0);
      for (const vm of VMS)
        expect(existsSync(path.join(home, vm, ".pending.json")), vm).toBe(false);
      const after = await generations(home);
      for (const [i, g] of after.entries()) expect(g, VMS[i]).toBeGreaterThan(gens[i] ?? 0);
      const doctor = await runCli(["--home", home, "doctor"]);
      expect(doctor.code, doctor.stdout).toBe(0);
      const check = await runCli(["--home", home, "registry", "check"]);
      expect(check.code, check.stdout + check.stderr).toBe(0);
    }, 240_000);
  });
}
