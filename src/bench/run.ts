/**
 * `npm run bench` (= build, then `node dist/bench/run.js`).
 *
 *     node dist/bench/run.js [--count N] [name ...]
 *
 * Runs the registered benchmarks (all, or those named) and prints labelled
 * figures. To add one, export a `Benchmark` (see harness.ts) and list it in
 * BENCHMARKS below.
 */
import { parseArgs } from "node:util";
import { coldStartBenchmark } from "./coldstart.js";
import { type Benchmark, formatResult, peakRssMiB, removeLiveTempDirsSync } from "./harness.js";
import { identityBenchmark } from "./identity.js";
import { qemuBenchmark } from "./qemu.js";
import { registryBenchmark } from "./registry.js";
import { scaleBenchmark } from "./scale.js";
import { sysprepBenchmark } from "./sysprep.js";

export const BENCHMARKS: readonly Benchmark[] = [
  identityBenchmark,
  qemuBenchmark,
  coldStartBenchmark,
  sysprepBenchmark,
  registryBenchmark,
  scaleBenchmark,
];

export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { count: { type: "string" }, list: { type: "boolean" } },
    allowPositionals: true,
  });
  if (values.list) {
    for (const b of BENCHMARKS) process.stdout.write(`${b.name}: ${b.description}\n`);
    return 0;
  }
  const count = values.count === undefined ? undefined : Number(values.count);
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) {
    process.stderr.write(`bench: --count must be a positive integer, got ${values.count}\n`);
    return 2;
  }
  const unknown = positionals.filter((p) => !BENCHMARKS.some((b) => b.name === p));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: unknown benchmark ${unknown.join(", ")}; known: ${BENCHMARKS.map((b) => b.name).join(", ")}\n`,
    );
    return 2;
  }
  const selected =
    positionals.length === 0 ? BENCHMARKS : BENCHMARKS.filter((b) => positionals.includes(b.name));
  process.stdout.write(`glint benchmarks — node ${process.version}, ${process.platform}\n\n`);
  for (const b of selected) {
    const result = await b.run({
      ...(count === undefined ? {} : { count }),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${formatResult(result)}\n\n`);
  }
  process.stdout.write(`process peak RSS: ${peakRssMiB().toFixed(1)} MiB\n`);
  return 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    removeLiveTempDirsSync();
    process.stderr.write(`bench: interrupted (${signal}); temp homes removed\n`);
    process.exit(130);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
