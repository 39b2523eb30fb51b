/**
 * The registry at scale (`npm run bench registry`, `--count N`, 10,000 VMs by
 * default): identity creation with the registry, a fresh process's create
 * (one registry look-up per value) beside the old directory scan every
 * create used to pay, `glint list --json` and `glint show VM --json` through
 * the built CLI, `glint registry check`, and peak RSS.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { UuidManager } from "../manager.js";
import { checkRegistry } from "../registry/check.js";
import { UsedValues } from "../vm/registry.js";
import { type Benchmark, type BenchResult, peakRssMiB, timed, withTempDir } from "./harness.js";
import { createManyIdentities } from "./identity.js";

const run = promisify(execFile);
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "cli", "main.js");

/** Wall time and peak RSS (MiB) of one `glint` process. */
async function cli(args: string[]): Promise<{ ms: number; rssMiB: number }> {
  const { ms, value } = await timed(() =>
    run("/usr/bin/time", ["-f", "%M", process.execPath, CLI, ...args], {
      maxBuffer: 1024 * 1024 * 1024,
    }),
  );
  const kib = Number(value.stderr.trim().split("\n").at(-1));
  return { ms, rssMiB: kib / 1024 };
}

export const registryBenchmark: Benchmark = {
  name: "registry",
  description:
    "N identities with the registry; a fresh process's create vs the old directory scan; list --json, show --json, registry check",
  async run({ count = 10_000, log }): Promise<BenchResult> {
    return withTempDir("glint-bench-registry-", async (home) => {
      log?.(`registry: creating ${count} VMs in ${home}`);
      const create = await createManyIdentities(home, count, log);
      log?.("registry: a fresh manager creates one more");
      const fresh = await timed(async () => {
        const m = new UuidManager({ home, steps: {} });
        await m.generateFreshIdentifiers("one-more");
        await m.close();
      });
      log?.("registry: the old directory scan");
      const scan = await timed(() => new UsedValues(home).refresh({ force: true }));
      log?.("registry: list, show, check");
      const list = await cli(["list", "--json", "--home", home]);
      const show = await cli(["show", "vm-0", "--json", "--home", home]);
      const m = new UuidManager({ home, steps: {} });
      const check = await timed(async () => checkRegistry(await m.registry()));
      await m.close();
      if (check.value.drift.length > 0) throw new Error("registry check found drift");
      return {
        name: `registry (${count} VMs, SQLite)`,
        figures: [
          { label: "identity creates", value: create.perSecond, unit: "VMs/s" },
          { label: "total create time", value: create.ms / 1000, unit: "s" },
          { label: "fresh manager: 1 create (registry look-ups)", value: fresh.ms, unit: "ms" },
          { label: "old: directory scan before a create", value: scan.ms, unit: "ms" },
          { label: "glint list --json", value: list.ms, unit: "ms" },
          { label: "glint list --json peak RSS", value: list.rssMiB, unit: "MiB" },
          { label: "glint show VM --json", value: show.ms, unit: "ms" },
          { label: "glint show VM --json peak RSS", value: show.rssMiB, unit: "MiB" },
          { label: "registry check", value: check.ms, unit: "ms" },
          { label: "bench process peak RSS", value: peakRssMiB(), unit: "MiB" },
        ],
      };
    });
  },
};
