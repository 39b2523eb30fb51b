/**
 * QEMU-side benchmarks:
 *   - overlay creation (`qemu-img create -b base.qcow2`) on a 2 GiB and a
 *     50 GiB sparse base: the time must not grow with the base's size;
 *   - `glint qemu-args <vm>`: in-process (UuidManager.qemuArgs) and as a
 *     whole CLI process, as a user runs it.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runTool } from "../host/tools.js";
import { UuidManager } from "../manager.js";
import { createOverlay } from "../qemu/index.js";
import {
  type Benchmark,
  type BenchResult,
  type Figure,
  median,
  timed,
  withTempDir,
} from "./harness.js";

const execFileAsync = promisify(execFile);
const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));

/** Median ms of `runs` overlay creations on a sparse qcow2 base of `size`. */
export async function overlayCreationMs(dir: string, size: string, runs: number): Promise<number> {
  const base = path.join(dir, `base-${size}.qcow2`);
  await runTool("qemu-img", ["create", "-q", "-f", "qcow2", base, size]);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    times.push(
      (await timed(() => createOverlay(base, path.join(dir, `overlay-${size}-${i}.qcow2`)))).ms,
    );
  }
  return median(times);
}

export const qemuBenchmark: Benchmark = {
  name: "qemu",
  description: "overlay creation on 2 GiB and 50 GiB sparse bases; glint qemu-args",
  async run(options): Promise<BenchResult> {
    const runs = options.count ?? 20;
    return withTempDir("glint-bench-qemu-", async (dir) => {
      const figures: Figure[] = [];
      for (const size of ["2G", "50G"]) {
        options.log?.(`overlay on a ${size} base, ${runs} runs`);
        figures.push({
          label: `overlay creation, ${size === "2G" ? "2 GiB" : "50 GiB"} sparse base (median)`,
          value: await overlayCreationMs(dir, size, runs),
          unit: "ms",
        });
      }
      const home = path.join(dir, "home");
      const base = path.join(dir, "base-2G.qcow2");
      const manager = new UuidManager({ home });
      await manager.createVm("bench", { base, overlay: true, firmware: "uefi", tpm: true });
      const inProcess: number[] = [];
      for (let i = 0; i < runs; i++)
        inProcess.push((await timed(() => manager.qemuArgs("bench"))).ms);
      figures.push({
        label: "qemu-args, in process (median)",
        value: median(inProcess),
        unit: "ms",
      });
      const cli: number[] = [];
      for (let i = 0; i < Math.min(runs, 10); i++) {
        cli.push(
          (
            await timed(() =>
              execFileAsync(process.execPath, [CLI, "qemu-args", "bench", "--home", home]),
            )
          ).ms,
        );
      }
      figures.push({
        label: "glint qemu-args, whole CLI process (median)",
        value: median(cli),
        unit: "ms",
      });
      return { name: "qemu", figures };
    });
  },
};
