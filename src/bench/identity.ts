/**
 * Identity benchmarks through the public UuidManager API:
 *   - creating many VMs' identities (generateFreshIdentifiers) in one home,
 *   - the store-wide uniqueness scan a fresh process pays before its first
 *     draw (a new UuidManager creating one more VM in that home).
 */
import { promises as fs } from "node:fs";
import { UuidManager } from "../manager.js";
import { type Benchmark, type BenchResult, peakRssMiB, timed, withTempDir } from "./harness.js";

export interface CreateManyResult {
  readonly count: number;
  readonly ms: number;
  readonly perSecond: number;
}

/** Create `count` VMs (vm-0 … vm-N-1) in `home` with one manager. */
export async function createManyIdentities(
  home: string,
  count: number,
  log?: (line: string) => void,
  options: { withGuestFiles?: boolean } = {},
): Promise<CreateManyResult> {
  // Identity only: no reset steps (no post-install script or seed.iso per VM).
  const manager = new UuidManager(options.withGuestFiles ? { home } : { home, steps: {} });
  const step = Math.max(1, Math.floor(count / 10));
  const { ms } = await timed(async () => {
    for (let i = 0; i < count; i++) {
      await manager.generateFreshIdentifiers(`vm-${i}`);
      if (log && (i + 1) % step === 0) log(`  created ${i + 1}/${count}`);
    }
  });
  return { count, ms, perSecond: count / (ms / 1000) };
}

export interface ScanResult {
  readonly vms: number;
  readonly ms: number;
}

/**
 * A new manager (as a new `glint` process would have) creates one more VM:
 * it must first scan every identifiers.json in the home.
 */
export async function uniquenessScan(home: string, name = "one-more"): Promise<ScanResult> {
  const vms = (await new UuidManager({ home }).listVms()).length;
  const { ms } = await timed(() =>
    new UuidManager({ home, steps: {} }).generateFreshIdentifiers(name),
  );
  return { vms, ms };
}

/** Check the home really holds `expected` VMs (a benchmark that silently did less is useless). */
async function countIdentityFiles(home: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(home, { withFileTypes: true })) {
    if (e.isDirectory() && !e.name.startsWith(".")) n++;
  }
  return n;
}

export const identityBenchmark: Benchmark = {
  name: "identity",
  description:
    "create N VMs' identities via UuidManager.generateFreshIdentifiers (identity only), the uniqueness scan of a fresh manager, and full creates with script + seed.iso",
  async run({ count = 10_000, log }): Promise<BenchResult> {
    return withTempDir("glint-bench-", async (home) => {
      log?.(`identity: creating ${count} VMs in ${home}`);
      const create = await createManyIdentities(home, count, log);
      const made = await countIdentityFiles(home);
      if (made !== count) throw new Error(`expected ${count} VMs in ${home}, found ${made}`);
      log?.("identity: uniqueness scan by a fresh manager");
      const scan = await uniquenessScan(home);
      const fullCount = Math.min(200, count);
      log?.(`identity: ${fullCount} full creates (with post-install script and seed.iso)`);
      const full = await withTempDir("glint-bench-full-", (dir) =>
        createManyIdentities(dir, fullCount, undefined, { withGuestFiles: true }),
      );
      return {
        name: `identity (${count} VMs)`,
        figures: [
          { label: "VMs created", value: create.count, unit: "" },
          { label: "total time", value: create.ms / 1000, unit: "s" },
          { label: "throughput", value: create.perSecond, unit: "VMs/s" },
          { label: "mean per VM", value: create.ms / create.count, unit: "ms" },
          { label: `uniqueness scan (${scan.vms} VMs) + 1 create`, value: scan.ms, unit: "ms" },
          {
            label: `full create incl. script + seed.iso (${full.count} VMs)`,
            value: full.perSecond,
            unit: "VMs/s",
          },
          { label: "peak RSS", value: peakRssMiB(), unit: "MiB" },
        ],
      };
    });
  },
};
