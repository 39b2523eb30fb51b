/**
 * Fleet scale (`npm run bench scale`, at 10,000 and 100,000 VMs, or only
 * `--count N`), each figure with its process's peak RSS:
 *   - identity-only bulk creates (the batched path, one process, a child so
 *     that its RSS is its own);
 *   - full bulk creates through the CLI (`glint create 'full-{n}' --count N`:
 *     identity, post-install script, identity.env; at most 10,000);
 *   - `glint list --json` (from the registry's index), `glint show VM --json`
 *     (against the same in a 1-VM home), `glint doctor`, `glint registry check`;
 *   - side by side, the old figures: the directory scan every create used to
 *     pay, and `glint list --json` reading every VM's files (no registry;
 *     at most 10,000 VMs).
 */
import { spawn } from "node:child_process";
import { closeSync, promises as fs, openSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { storePaths } from "../vm/layout.js";
import { UsedValues } from "../vm/registry.js";
import { type Benchmark, type BenchResult, type Figure, timed, withTempDir } from "./harness.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, "..", "cli", "main.js");
const CHILD = path.join(here, "scale-child.js");

/** One process's wall time, CPU time (user + sys, its children's too), peak RSS (MiB) and stdout. */
interface Proc {
  ms: number;
  cpuMs: number;
  rssMiB: number;
  stdout: string;
}

/**
 * Run node with `argv` under /usr/bin/time. Its stdout goes to a file, as
 * when a user redirects `glint list --json`, so that the figure is the
 * command's own, not this process's collecting 100 MB through a pipe.
 */
async function proc(argv: string[]): Promise<Proc> {
  return withTempDir("glint-bench-out-", async (dir) => {
    const out = path.join(dir, "stdout");
    const fd = openSync(out, "w");
    let stderr = "";
    try {
      const { ms, value: code } = await timed(
        () =>
          new Promise<number | null>((resolve, reject) => {
            const child = spawn("/usr/bin/time", ["-f", "%U %S %M", process.execPath, ...argv], {
              stdio: ["ignore", fd, "pipe"],
            });
            child.stderr?.setEncoding("utf8").on("data", (d: string) => {
              stderr += d;
            });
            child.on("error", reject).on("close", resolve);
          }),
      );
      if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim()}`);
      const [user, sys, kib] = (stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number);
      return {
        ms,
        cpuMs: ((user ?? 0) + (sys ?? 0)) * 1000,
        rssMiB: (kib ?? 0) / 1024,
        stdout: await fs.readFile(out, "utf8"),
      };
    } finally {
      closeSync(fd);
    }
  });
}

const glint = (home: string, ...args: string[]) => proc([CLI, ...args, "--home", home]);

async function atCount(count: number, log?: (line: string) => void): Promise<Figure[]> {
  return withTempDir("glint-bench-scale-", async (home) => {
    const f: Figure[] = [];
    const add = (label: string, r: Proc) => {
      const load = os.loadavg()[0] ?? 0;
      f.push(
        { label: `${label}`, value: r.ms / 1000, unit: "s" },
        { label: `${label}: CPU (user + sys)`, value: r.cpuMs / 1000, unit: "s" },
        { label: `${label}: peak RSS`, value: r.rssMiB, unit: "MiB" },
        { label: `${label}: load average (1 min)`, value: load, unit: "" },
      );
      // As it goes too: a long run that fails later keeps what it measured.
      log?.(
        `  [${count}] ${label}: ${(r.ms / 1000).toFixed(2)} s, CPU ${(r.cpuMs / 1000).toFixed(2)} s, ${r.rssMiB.toFixed(0)} MiB, load ${load.toFixed(1)}`,
      );
    };
    log?.(`scale: ${count} identity-only creates`);
    const ids = await proc([CHILD, home, String(count)]);
    add(`${count} identity-only creates (batched)`, ids);
    const names = (await fs.readdir(home)).filter((n) => !n.startsWith("."));
    if (names.length !== count) throw new Error(`expected ${count} VMs, found ${names.length}`);
    const full = Math.min(count, 10_000);
    log?.(`scale: ${full} full creates through the CLI`);
    await withTempDir("glint-bench-full-", async (fullHome) => {
      const r = await glint(fullHome, "create", "full-{n}", "--count", String(full));
      if (!/created (\d+) of \1 VMs/.test(r.stdout)) throw new Error("full creates failed");
      add(`${full} full creates (glint create --count, script + identity.env)`, r);
    });
    log?.("scale: list, show, doctor");
    const list = await glint(home, "list", "--json");
    if ((JSON.parse(list.stdout) as unknown[]).length !== count) throw new Error("list is short");
    add("glint list --json (registry index)", list);
    const first = names.sort()[0] ?? "";
    add("glint show VM --json", await glint(home, "show", first, "--json"));
    await withTempDir("glint-bench-one-", async (one) => {
      await glint(one, "create", "solo");
      add("glint show VM --json, 1-VM home", await glint(one, "show", "solo", "--json"));
    });
    add("glint doctor", await glint(home, "doctor"));
    log?.("scale: registry check");
    add("glint registry check", await glint(home, "registry", "check"));
    log?.("scale: the old directory scan");
    const scan = await timed(() => new UsedValues(home).refresh({ force: true }));
    f.push({ label: "old: directory scan before each create", value: scan.ms / 1000, unit: "s" });
    log?.(`  [${count}] old: directory scan: ${(scan.ms / 1000).toFixed(2)} s`);
    if (count <= 10_000) {
      log?.("scale: list reading every VM's files (no registry)");
      const db = storePaths(home).registryDb;
      for (const ext of ["", "-wal", "-shm"])
        await fs.rename(`${db}${ext}`, `${db}${ext}.away`).catch(() => {});
      add("old: glint list --json reading the files", await glint(home, "list", "--json"));
    }
    return f;
  });
}

export const scaleBenchmark: Benchmark = {
  name: "scale",
  description:
    "bulk creates (identity-only and full), list/show/doctor/registry check at 10,000 and 100,000 VMs, with RSS, beside the old directory-scan figures",
  async run({ count, log }): Promise<BenchResult> {
    const figures: Figure[] = [];
    for (const n of count === undefined ? [10_000, 100_000] : [count]) {
      for (const fig of await atCount(n, log))
        figures.push({ ...fig, label: `[${n}] ${fig.label}` });
    }
    figures.push({
      label: "load average (1 min) at the end",
      value: os.loadavg()[0] ?? 0,
      unit: "",
    });
    return { name: "scale (SQLite registry)", figures };
  },
};
