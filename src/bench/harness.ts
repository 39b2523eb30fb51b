/**
 * A tiny benchmark harness: each benchmark is a named async function that
 * returns labelled figures; `run.ts` runs the registered ones and prints them.
 * Add a benchmark by exporting a {@link Benchmark} and listing it in run.ts.
 */
import { promises as fs, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Figure {
  readonly label: string;
  readonly value: number;
  readonly unit: string;
}

export interface BenchResult {
  readonly name: string;
  readonly figures: readonly Figure[];
}

export interface BenchOptions {
  /** Size of the workload (e.g. number of VMs); each benchmark has its own default. */
  readonly count?: number;
  /** Progress lines (to stderr), so that long runs show they are alive. */
  readonly log?: (line: string) => void;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(options: BenchOptions): Promise<BenchResult>;
}

/** Wall-clock milliseconds of `fn`, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

/** The median of `values` (NaN for none). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMiB(): number {
  // resourceUsage().maxRSS is in KiB on Linux.
  return process.resourceUsage().maxRSS / 1024;
}

const liveTempDirs = new Set<string>();

/** Run `fn` with a fresh temp directory that is removed afterwards, even on failure. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  liveTempDirs.add(dir);
  try {
    return await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    liveTempDirs.delete(dir);
  }
}

/** Remove temp directories still in use (for SIGINT/SIGTERM handlers). */
export function removeLiveTempDirsSync(): void {
  for (const dir of liveTempDirs) rmSync(dir, { recursive: true, force: true });
  liveTempDirs.clear();
}

function formatValue(f: Figure): string {
  const digits = Math.abs(f.value) >= 100 ? 0 : Math.abs(f.value) >= 10 ? 1 : 2;
  return `${f.value.toFixed(digits)} ${f.unit}`.trimEnd();
}

/** Human-readable lines: the benchmark name, then aligned `label: value unit` lines. */
export function formatResult(result: BenchResult): string {
  const width = Math.max(...result.figures.map((f) => f.label.length));
  return [
    `${result.name}`,
    ...result.figures.map((f) => `  ${`${f.label}:`.padEnd(width + 1)}  ${formatValue(f)}`),
  ].join("\n");
}
