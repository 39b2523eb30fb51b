/**
 * `glint registry check|rebuild|config`: the registry of issued values (see
 * src/registry/), and the global `--registry URL` option that selects it
 * for every command (as `GLINT_REGISTRY` does).
 */
import type { Command } from "commander";
import type { UuidManager } from "../manager.js";
import { checkRegistry, type Drift, driftError, rebuildRegistry } from "../registry/check.js";
import { readHomeConfig, writeHomeConfig } from "../registry/config.js";
import { macSpace } from "../registry/mac.js";
import { formatTable } from "./format.js";
import type { Io } from "./io.js";

interface Opts {
  home?: string;
  json?: boolean;
}

function driftTable(drift: readonly Drift[]): string {
  return formatTable([
    ["PROBLEM", "FIELD", "VALUE", "VMS"],
    ...drift.map((d) => [d.kind, d.field, d.value, d.vms.join(", ")]),
  ]);
}

function withCommon(cmd: Command): Command {
  return cmd
    .option("--home <dir>", "VM home directory (default: $GLINT_HOME or ./vms_linux)")
    .option("--json", "print JSON instead of text");
}

export function addRegistryCommands(
  program: Command,
  io: Io,
  manager: (home: string | undefined) => UuidManager,
): void {
  program.option(
    "--registry <url>",
    "registry of issued values: postgres://… or an SQLite file (default: $GLINT_REGISTRY, the home's .glint/config.json, else <home>/.glint/registry.db)",
  );
  program.hook("preAction", () => {
    const url = program.opts<{ registry?: string }>().registry;
    if (url !== undefined) process.env.GLINT_REGISTRY = url;
  });
  const registry = program
    .command("registry")
    .description("check or rebuild the registry of every identifier value issued");
  const run = async <T>(home: string | undefined, fn: (m: UuidManager) => Promise<T>) => {
    const m = manager(home);
    try {
      return await fn(m);
    } finally {
      await m.close();
    }
  };

  withCommon(registry.command("check"))
    .description("compare the registry with the files of every VM; exit 1 on any drift")
    .action((opts: Opts) =>
      run(opts.home, async (m) => {
        const report = await checkRegistry(await m.registry());
        if (opts.json) io.stdout(JSON.stringify(report, null, 2));
        else if (report.drift.length === 0)
          io.stdout(
            `registry and files agree: ${report.vms} VM(s), ${report.values} value(s), ${report.rows} row(s) in the ${report.registry}${report.retired ? ` (${report.retired} of VMs whose directory is gone)` : ""}`,
          );
        else io.stdout(driftTable(report.drift));
        if (report.drift.length > 0)
          throw driftError(report.drift.length, "difference(s) between the registry and the files");
      }),
    );

  withCommon(registry.command("rebuild"))
    .description("rebuild this home's rows from the files and history; refuses on duplicates")
    .action((opts: Opts) =>
      run(opts.home, async (m) => {
        const result = await rebuildRegistry(await m.registry());
        if (opts.json) io.stdout(JSON.stringify(result, null, 2));
        else if (result.duplicates.length > 0) io.stdout(driftTable(result.duplicates));
        else io.stdout(`registry rebuilt from the files: ${result.rows} row(s)`);
        if (result.duplicates.length > 0) {
          throw driftError(
            result.duplicates.length,
            "value(s) are held twice; nothing was rebuilt",
            "duplicates-found",
          );
        }
      }),
    );

  withCommon(registry.command("config"))
    .description("show or set the home's registry and MAC prefix (.glint/config.json)")
    .option("--mac-prefix <prefix>", "locally administered MAC prefix, 1–5 octets, e.g. 02")
    .option("--url <url>", "registry for this home: postgres://… or an SQLite file")
    .action((opts: Opts & { macPrefix?: string; url?: string }) =>
      run(opts.home, async (m) => {
        let config = await readHomeConfig(m.home);
        if (opts.macPrefix !== undefined || opts.url !== undefined) {
          config = {
            ...config,
            ...(opts.macPrefix === undefined ? {} : { mac_prefix: opts.macPrefix.toLowerCase() }),
            ...(opts.url === undefined ? {} : { registry: opts.url }),
          };
          await writeHomeConfig(m.home, config);
        }
        const prefix = config.mac_prefix ?? "52:54:00";
        if (opts.json) io.stdout(JSON.stringify({ ...config, mac_space: macSpace(prefix) }));
        else
          io.stdout(
            `registry: ${config.registry ?? "(default)"}\nMAC prefix: ${prefix} (${macSpace(prefix)} addresses)`,
          );
      }),
    );
}
