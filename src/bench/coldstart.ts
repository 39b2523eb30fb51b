/**
 * Cold start: how long a whole `glint` process takes, as a user or a script
 * runs it, against `node -e 0` (the floor: Node's own start and exit).
 *
 * On a small home (3 VMs made with `glint create`), each round runs
 * `node -e 0`, `glint show VM --json` and `glint list --json` once, in an
 * order that rotates from round to round, so that the three are measured
 * side by side under the same machine load; the figures are the medians and
 * their ratios, and the load average, since other jobs on the machine
 * stretch a longer process more. One untimed round first fills the page
 * cache.
 */
import { execFile } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Benchmark, type BenchResult, median, timed, withTempDir } from "./harness.js";

const execFileAsync = promisify(execFile);
/** The `glint` bin (package.json), i.e. the bundle the build writes. */
export const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const VMS = ["vm-1", "vm-2", "vm-3"];

interface Probe {
  readonly label: string;
  readonly argv: readonly string[];
  /** Throws unless the process did what it should (a fast failure is no result). */
  readonly check: (stdout: string) => void;
}

function probes(home: string): Probe[] {
  return [
    { label: "node -e 0", argv: ["-e", "0"], check: () => {} },
    {
      label: "glint show VM --json",
      argv: [CLI, "show", "vm-1", "--json", "--home", home],
      check: (stdout) => {
        if ((JSON.parse(stdout) as { vm_uuid?: unknown }).vm_uuid === undefined)
          throw new Error(`glint show printed no identity: ${stdout}`);
      },
    },
    {
      label: "glint list --json",
      argv: [CLI, "list", "--json", "--home", home],
      check: (stdout) => {
        const rows = JSON.parse(stdout) as { ok?: boolean }[];
        if (rows.length !== VMS.length || !rows.every((r) => r.ok))
          throw new Error(`glint list did not list ${VMS.length} usable VMs: ${stdout}`);
      },
    },
  ];
}

/** Wall-clock ms of one whole process (spawn to exit); fails if it failed. */
async function runOnce(probe: Probe): Promise<number> {
  const { ms, value } = await timed(() =>
    execFileAsync(process.execPath, [...probe.argv], { maxBuffer: 16 * 1024 * 1024 }),
  );
  probe.check(value.stdout);
  return ms;
}

/** Medians (ms) of `rounds` interleaved runs of each probe, by label. */
export async function coldStartMs(home: string, rounds: number): Promise<Map<string, number>> {
  const all = probes(home);
  for (const probe of all) await runOnce(probe);
  const times = new Map<string, number[]>(all.map((p) => [p.label, []]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < all.length; i++) {
      const probe = all[(round + i) % all.length] as Probe;
      times.get(probe.label)?.push(await runOnce(probe));
    }
  }
  return new Map([...times].map(([label, ms]) => [label, median(ms)]));
}

export const coldStartBenchmark: Benchmark = {
  name: "coldstart",
  description: "whole glint show/list processes on a 3-VM home against node -e 0",
  async run(options): Promise<BenchResult> {
    const rounds = options.count ?? 30;
    return withTempDir("glint-bench-coldstart-", async (dir) => {
      const home = path.join(dir, "home");
      for (const vm of VMS) {
        await execFileAsync(process.execPath, [CLI, "create", vm, "--home", home, "--json"]);
      }
      options.log?.(
        `cold start: ${rounds} interleaved rounds of node -e 0, glint show, glint list`,
      );
      const ms = await coldStartMs(home, rounds);
      const node = ms.get("node -e 0") ?? Number.NaN;
      const show = ms.get("glint show VM --json") ?? Number.NaN;
      const list = ms.get("glint list --json") ?? Number.NaN;
      return {
        name: "coldstart",
        figures: [
          { label: "node -e 0 (median)", value: node, unit: "ms" },
          { label: "glint show VM --json, whole process (median)", value: show, unit: "ms" },
          { label: "glint list --json, whole process (median)", value: list, unit: "ms" },
          { label: "glint show / node -e 0", value: show / node, unit: "×" },
          { label: "glint list / node -e 0", value: list / node, unit: "×" },
          // Other jobs on the machine slow every process down, the longer ones more.
          { label: "load average (1 min) at the end", value: os.loadavg()[0] ?? 0, unit: "" },
        ],
      };
    });
  },
};
