/**
 * The `glint` command line. Every command takes `--home` and `--json`, calls
 * the UuidManager API (the menu calls the same API) and prints either text or
 * JSON. Errors become one line on stderr; see main.ts for exit codes.
 */
import { Command, Option } from "commander";
import { GlintError, UsageError } from "../errors.js";
import { identifiersToDict } from "../identity/model.js";
import { POLICIES } from "../identity/policies.js";
import { type OperationResult, UuidManager } from "../manager.js";
import { formatComparison, formatIdentity, formatTable } from "./format.js";
import { confirmByTyping, type Io, processIo } from "./io.js";

interface CommonOptions {
  home?: string;
  json?: boolean;
}

/** Options shared by every command. */
function common(cmd: Command): Command {
  return cmd
    .option("--home <dir>", "VM home directory (default: $GLINT_HOME or ./vms_linux)")
    .option("--json", "print JSON instead of text");
}

function printResult(io: Io, result: OperationResult, json: boolean | undefined): void {
  if (json) {
    io.stdout(JSON.stringify(identifiersToDict(result.identifiers), null, 2));
    return;
  }
  const policy = POLICIES[result.policy];
  const lines = [`${policy.title}: ${result.vm}`];
  if (result.previous) lines.push(formatComparison(result.previous, result.identifiers));
  else lines.push(formatIdentity(result.identifiers));
  const steps = Object.entries(result.steps)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
  if (steps) lines.push(`reset steps: ${steps}`);
  if (result.archived) lines.push(`previous identity kept in ${result.archived}`);
  io.stdout(lines.join("\n"));
}

export interface ProgramContext {
  io: Io;
  /** Builds the manager for a command's `--home` (tests inject options here). */
  manager: (home: string | undefined) => UuidManager;
}

export const defaultContext: ProgramContext = {
  io: processIo,
  manager: (home) => new UuidManager(home === undefined ? {} : { home }),
};

export function buildProgram(ctx: ProgramContext = defaultContext): Command {
  const { io } = ctx;
  const program = new Command("glint")
    .description("Give every QEMU/KVM Linux VM a unique, checkable identity")
    .version("0.1.0")
    .showHelpAfterError("(run `glint --help` for usage)")
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) });

  common(program.command("create"))
    .description("create a VM's identity (all new identifiers) and print it")
    .argument("<vm>", "VM name (becomes the hostname)")
    .option("--force", "replace existing identifiers (the old ones are kept in history/)")
    .action(async (vm: string, opts: CommonOptions & { force?: boolean }) => {
      const result = await ctx.manager(opts.home).generateFreshIdentifiers(vm, {
        forceRegenerate: Boolean(opts.force),
      });
      printResult(io, result, opts.json);
    });

  common(program.command("list"))
    .description("list VMs, one line each")
    .action(async (opts: CommonOptions) => {
      const m = ctx.manager(opts.home);
      const rows: string[][] = [];
      const json: Record<string, unknown>[] = [];
      for (const vm of await m.listVms()) {
        try {
          const ids = await m.getIdentifiers(vm);
          const cfg = await m.getConfig(vm);
          rows.push([
            vm,
            ids.vm_uuid,
            ids.mac_address,
            cfg.firmware,
            cfg.tpm ? "tpm" : "-",
            cfg.overlay ? "overlay" : "-",
            ids.updated_at,
          ]);
          json.push({
            name: vm,
            ok: true,
            ...identifiersToDict(ids),
            firmware: cfg.firmware,
            tpm: cfg.tpm,
            overlay: cfg.overlay,
          });
        } catch (error) {
          const msg = error instanceof Error ? error.message : String(error);
          rows.push([vm, `(unusable: ${msg})`]);
          json.push({ name: vm, ok: false, error: msg });
        }
      }
      if (opts.json) io.stdout(JSON.stringify(json, null, 2));
      else if (rows.length === 0)
        io.stdout(`no VMs in ${m.home}; create one with \`glint create <vm>\``);
      else
        io.stdout(
          formatTable([
            ["NAME", "VM UUID", "MAC", "FIRMWARE", "TPM", "OVERLAY", "UPDATED"],
            ...rows,
          ]),
        );
    });

  common(program.command("show"))
    .description("show the identifiers of one VM, or of all VMs")
    .argument("[vm]", "VM name (default: all VMs)")
    .action(async (vm: string | undefined, opts: CommonOptions) => {
      const m = ctx.manager(opts.home);
      if (vm !== undefined) {
        const ids = await m.getIdentifiers(vm);
        io.stdout(
          opts.json
            ? JSON.stringify(identifiersToDict(ids), null, 2)
            : `${vm}\n${formatIdentity(ids, "  ")}`,
        );
        return;
      }
      const all = [];
      for (const name of await m.listVms()) all.push({ name, ids: await m.getIdentifiers(name) });
      if (opts.json)
        io.stdout(
          JSON.stringify(
            all.map((x) => identifiersToDict(x.ids)),
            null,
            2,
          ),
        );
      else if (all.length === 0)
        io.stdout(`no VMs in ${m.home}; create one with \`glint create <vm>\``);
      else io.stdout(all.map((x) => `${x.name}\n${formatIdentity(x.ids, "  ")}`).join("\n\n"));
    });

  const regen = program.command("regen").description("regenerate part of a VM's identity");
  for (const policy of ["disk", "base"] as const) {
    common(regen.command(policy))
      .description(POLICIES[policy].description)
      .argument("<vm>", "VM name")
      .option("--yes", "do not ask for confirmation")
      .action(async (vm: string, opts: CommonOptions & { yes?: boolean }) => {
        const m = ctx.manager(opts.home);
        const result = await m.regenerate(vm, policy, {});
        printResult(io, result, opts.json);
      });
  }

  common(program.command("nuke"))
    .description("NUKE: regenerate every identifier and reset UEFI, Secure Boot, TPM and overlay")
    .argument("<vm>", "VM name")
    .option("--yes", "do not ask for the VM name to be typed back")
    .action(async (vm: string, opts: CommonOptions & { yes?: boolean }) => {
      const m = ctx.manager(opts.home);
      m.paths(vm);
      await m.getIdentifiers(vm);
      if (!opts.yes) {
        const ok = await confirmByTyping(
          io,
          `This replaces every identifier of "${vm}" and resets its UEFI variables, Secure Boot state, TPM and overlay.`,
          vm,
          "--yes",
        );
        if (!ok)
          throw new GlintError("nuke cancelled: the name did not match; nothing was changed");
      }
      printResult(io, await m.nukeAndRegenerateAll(vm), opts.json);
    });

  common(program.command("history"))
    .description("list a VM's past identities, oldest first")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const entries = await ctx.manager(opts.home).history(vm);
      if (opts.json) {
        io.stdout(
          JSON.stringify(
            entries.map((e) => ({
              archived_at: e.archivedAt,
              reason: e.reason,
              file: e.file,
              identifiers: "error" in e.identifiers ? null : identifiersToDict(e.identifiers),
              error: "error" in e.identifiers ? e.identifiers.error : null,
            })),
            null,
            2,
          ),
        );
        return;
      }
      if (entries.length === 0) {
        io.stdout(`VM "${vm}" has no past identities`);
        return;
      }
      io.stdout(
        formatTable([
          ["ARCHIVED", "REPLACED BY", "VM UUID", "MACHINE ID", "MAC"],
          ...entries.map((e) =>
            "error" in e.identifiers
              ? [e.archivedAt, e.reason, `(unreadable: ${e.identifiers.error})`]
              : [
                  e.archivedAt,
                  e.reason,
                  e.identifiers.vm_uuid,
                  e.identifiers.machine_id,
                  e.identifiers.mac_address,
                ],
          ),
        ]),
      );
    });

  program.addOption(new Option("--debug", "print stack traces").hideHelp());
  return program;
}

export { UsageError };
