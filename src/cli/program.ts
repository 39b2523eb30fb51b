/**
 * The `glint` command line. Every command takes `--home` and `--json`, calls
 * the UuidManager API (the menu calls the same API) and prints either text or
 * JSON. Errors become one line on stderr; see main.ts for exit codes.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { GlintError, UsageError } from "../errors.js";
import { identifiersToDict } from "../identity/model.js";
import { POLICIES } from "../identity/policies.js";
import { type OperationResult, UuidManager } from "../manager.js";
import type { DiskAndFirmwareOptions } from "../ops/provision.js";
import { describeResets } from "../ops/reset-steps.js";
import { FIRMWARE_KINDS, HOSTNAME_SOURCES, NET_MODES } from "../vm/config.js";
import { formatComparison, formatIdentity, formatTable } from "./format.js";
import { confirmByTyping, confirmYesNo, type Io, processIo } from "./io.js";
import { printable, printableIo } from "./printable.js";
import { addRegistryCommands } from "./registry.js";
import { shellQuote } from "./shell.js";
import { addSysprepCommand } from "./sysprep.js";

/** `glint create`'s options: the manager's, with `--memory` for memoryMb and `--force`. */
type CreateCliOptions = Omit<DiskAndFirmwareOptions, "memoryMb"> & {
  force?: boolean;
  memory?: number;
};

function parseInteger(value: string): number {
  if (!/^[1-9][0-9]{0,6}$/.test(value))
    throw new InvalidArgumentError("expected a positive integer.");
  return Number(value);
}

/** Drop keys whose value is undefined (exactOptionalPropertyTypes-friendly spreading). */
function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A progress reporter: one line on stderr per step (silent with --json). */
function progress(io: Io, json: boolean | undefined): (message: string) => void {
  return (message) => {
    if (!json) io.stderr(`… ${message}`);
  };
}

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
  /** Exit code of a command that ran something (e.g. QEMU's, for `glint run`). */
  setExitCode: (code: number) => void;
  /** Builds the manager for a command's `--home` (tests inject options here). */
  manager: (home: string | undefined) => UuidManager;
}

export const defaultContext: ProgramContext = {
  io: processIo,
  setExitCode: (code) => {
    process.exitCode = code;
  },
  manager: (home) =>
    new UuidManager({
      ...(home === undefined ? {} : { home }),
      onNotice: (message) => processIo.stderr(printable(`glint: note: ${message}`)),
    }),
};

export interface ProgramOptions {
  /** Print usage errors as `{"error":{"code":"usage","message":…}}` (for `--json`). */
  jsonErrors?: boolean;
}

export function buildProgram(
  ctx: ProgramContext = defaultContext,
  options: ProgramOptions = {},
): Command {
  // Every line printed may quote a file's content: escape control characters.
  const io = printableIo(ctx.io);
  // `glint --home DIR <command>` and `glint <command> --home DIR` both work.
  const manager = (home: string | undefined) =>
    ctx.manager(home ?? program.opts<{ home?: string }>().home);
  const program = new Command("glint")
    .description("Give every QEMU/KVM Linux VM a unique, checkable identity")
    .version("0.1.0")
    .usage("[options] [command]")
    .enablePositionalOptions()
    // Set before any subcommand is added: commander copies these settings to
    // subcommands when they are created. Usage errors become one line and
    // exit code 2 (see main.ts).
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      outputError: (s, write) => {
        const message = `${s
          .replace(/^error: /, "")
          .trim()
          .replace(/\s*\n\s*/g, " ")} (run \`glint --help\` for usage)`;
        write(
          options.jsonErrors
            ? `${JSON.stringify({ error: { code: "usage", message } })}\n`
            : `glint: ${message}\n`,
        );
      },
    });

  common(program.command("create"))
    .description("create a VM: fresh identifiers, and optionally its disks, UEFI NVRAM and TPM")
    .argument("<vm>", "VM name (becomes the hostname)")
    .option("--force", "replace existing identifiers (the old ones are kept in history/)")
    .option("--base <img>", "base image (qcow2) to copy into the VM as base.qcow2")
    .option("--link-base", "symlink base.qcow2 to the shared --base image instead of copying it")
    .option(
      "--flatten-base",
      "accept a --base with a backing file by copying it flattened (qemu-img convert)",
    )
    .option("--overlay", "create overlay.qcow2 on top of base.qcow2 (needs --base)")
    .option("--disk-size <size>", "blank base.qcow2 of this size when there is no base, e.g. 8G")
    .addOption(new Option("--firmware <kind>", "firmware").choices(FIRMWARE_KINDS))
    .option("--tpm", "give the VM its own TPM 2.0 (swtpm)")
    .addOption(new Option("--tpm-model <model>", "TPM device").choices(["tpm-crb", "tpm-tis"]))
    .addOption(new Option("--net <mode>", "network backend").choices(NET_MODES))
    .option("--net-ifname <name>", "bridge (--net bridge) or tap interface (--net tap)")
    .option("--memory <mib>", "guest memory in MiB", parseInteger)
    .option("--cpus <n>", "virtual CPUs", parseInteger)
    .addOption(
      new Option(
        "--hostname-from <source>",
        "guest hostname: the VM name or glint-<machine-id>",
      ).choices(HOSTNAME_SOURCES),
    )
    .option(
      "--no-sysprep",
      "never write the identity into the VM's disk offline; the guest script and cloud-init apply it at boot",
    )
    .action(async (vm: string, opts: CommonOptions & CreateCliOptions) => {
      const m = manager(opts.home);
      const spinner = progress(io, opts.json);
      const result = await m.createVm(vm, {
        forceRegenerate: Boolean(opts.force),
        ...definedOnly({
          base: opts.base,
          linkBase: opts.linkBase,
          flattenBase: opts.flattenBase,
          overlay: opts.overlay,
          diskSize: opts.diskSize,
          firmware: opts.firmware,
          tpm: opts.tpm,
          tpmModel: opts.tpmModel,
          net: opts.net,
          netIfname: opts.netIfname,
          memoryMb: opts.memory,
          cpus: opts.cpus,
          hostnameFrom: opts.hostnameFrom,
          // commander sets `sysprep: true` unless --no-sysprep is given.
          sysprep: opts.sysprep === false ? false : undefined,
        }),
        onProgress: spinner,
      });
      printResult(io, result, opts.json);
    });

  common(program.command("list"))
    .description("list VMs, one line each")
    .action(async (opts: CommonOptions) => {
      const m = manager(opts.home);
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
          rows.push([vm, "-", "-", "-", "-", "-", `unusable: ${msg}`]);
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
      const m = manager(opts.home);
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
      const unreadable: string[] = [];
      for (const name of await m.listVms()) {
        try {
          all.push({ name, ids: await m.getIdentifiers(name) });
        } catch (error) {
          unreadable.push(`${name} (${error instanceof Error ? error.message : String(error)})`);
        }
      }
      // Show every readable VM, then fail naming the others.
      const failAfterwards = () => {
        if (unreadable.length > 0) {
          throw new GlintError(`cannot read ${unreadable.length} VM(s): ${unreadable.join("; ")}`);
        }
      };
      if (opts.json)
        io.stdout(
          JSON.stringify(
            all.map((x) => identifiersToDict(x.ids)),
            null,
            2,
          ),
        );
      else if (all.length === 0 && unreadable.length === 0)
        io.stdout(`no VMs in ${m.home}; create one with \`glint create <vm>\``);
      else io.stdout(all.map((x) => `${x.name}\n${formatIdentity(x.ids, "  ")}`).join("\n\n"));
      failAfterwards();
    });

  const regen = program
    .command("regen")
    .description("regenerate part of a VM's identity")
    .usage("disk|base <vm> [options]")
    .argument("[policy]")
    .allowExcessArguments()
    .action((policy: string | undefined) => {
      throw new UsageError(
        `${policy === undefined ? "regen needs a policy" : `unknown policy '${policy}'`}: use \`glint regen disk <vm>\` or \`glint regen base <vm>\``,
      );
    });
  for (const policy of ["disk", "base"] as const) {
    common(regen.command(policy))
      .description(POLICIES[policy].description)
      .argument("<vm>", "VM name")
      .option("--yes", "do not ask for confirmation")
      .option("--discard-overlay", "delete the old overlay instead of keeping it in history/")
      .action(
        async (vm: string, opts: CommonOptions & { yes?: boolean; discardOverlay?: boolean }) => {
          const m = manager(opts.home);
          await m.assertExists(vm);
          const config = await m.getConfig(vm);
          if (policy === "disk" && config.overlay && !opts.yes) {
            const ok = await confirmYesNo(
              io,
              `Replace the overlay of "${vm}"? Everything the guest wrote to it is discarded${opts.discardOverlay ? " (deleted)" : " (the old overlay is kept in history/)"}.`,
              "--yes",
            );
            if (!ok)
              throw new GlintError("regen disk cancelled; nothing was changed", {
                code: "cancelled",
              });
          }
          const result = await m.regenerate(vm, policy, {
            discardOverlay: Boolean(opts.discardOverlay),
            onProgress: progress(io, opts.json),
          });
          printResult(io, result, opts.json);
        },
      );
  }

  common(program.command("nuke"))
    .description("NUKE: regenerate every identifier and reset UEFI, Secure Boot, TPM and overlay")
    .argument("<vm>", "VM name")
    .option("--yes", "do not ask for the VM name to be typed back")
    .option("--discard-overlay", "delete the old overlay instead of keeping it in history/")
    .action(
      async (vm: string, opts: CommonOptions & { yes?: boolean; discardOverlay?: boolean }) => {
        const m = manager(opts.home);
        await m.assertExists(vm);
        // Refuse before asking for the name if the VM is running (glint run holds it).
        await m.assertNotBusy(vm);
        if (!opts.yes) {
          const config = await m.getConfig(vm);
          const resets = describeResets(POLICIES.nuke.reset, config, {
            discardOverlay: Boolean(opts.discardOverlay),
          });
          const ok = await confirmByTyping(
            io,
            `This replaces every identifier of "${vm}"${resets.length ? ` and resets ${resets.join(", ")}` : ""}.`,
            vm,
            "--yes",
          );
          if (!ok)
            throw new GlintError("nuke cancelled: the name did not match; nothing was changed", {
              code: "cancelled",
            });
        }
        printResult(
          io,
          await m.nukeAndRegenerateAll(vm, {
            discardOverlay: Boolean(opts.discardOverlay),
            onProgress: progress(io, opts.json),
          }),
          opts.json,
        );
      },
    );

  common(program.command("history"))
    .description("list a VM's past identities, oldest first")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const entries = await manager(opts.home).history(vm);
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

  const reset = program
    .command("reset")
    .description("reset a VM's firmware state")
    .usage("uefi|tpm <vm> [options]")
    .argument("[target]")
    .allowExcessArguments()
    .action((target: string | undefined) => {
      throw new UsageError(
        `${target === undefined ? "reset needs a target" : `unknown target '${target}'`}: use \`glint reset uefi <vm>\` or \`glint reset tpm <vm>\``,
      );
    });
  common(reset.command("uefi"))
    .description("replace the VM's UEFI variables with a fresh copy (old ones kept in history/)")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      await manager(opts.home).resetUefiVariables(vm);
      io.stdout(
        opts.json ? JSON.stringify({ vm, reset: "uefi" }) : `UEFI variables of "${vm}" reset`,
      );
    });
  common(reset.command("tpm"))
    .description(
      "wipe the VM's TPM and manufacture a new one with a new EK (old state kept in history/)",
    )
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const ek = await manager(opts.home).resetTpm(vm, { onProgress: progress(io, opts.json) });
      io.stdout(
        opts.json
          ? JSON.stringify({ vm, reset: "tpm", ek_fingerprint: ek })
          : `TPM of "${vm}" reset; new EK ${ek}`,
      );
    });

  common(program.command("qemu-args"))
    .description("print the QEMU arguments for a VM: identity, firmware, TPM and disks")
    .argument("<vm>", "VM name")
    .argument("[base-args...]", "QEMU arguments to merge with (after --)")
    .action(async (vm: string, base: string[], opts: CommonOptions) => {
      const argv = await manager(opts.home).qemuArgs(vm, base);
      io.stdout(opts.json ? JSON.stringify(argv) : shellQuote(argv));
    });

  common(program.command("run"))
    .description(
      "run the VM with qemu-system-x86_64 in the foreground, with its identity, firmware, TPM and disks",
    )
    .argument("<vm>", "VM name")
    .argument("[qemu-args...]", "extra QEMU arguments (after --), e.g. -kernel … -nographic")
    .option("--dry-run", "print the command instead of running it")
    .action(async (vm: string, extra: string[], opts: CommonOptions & { dryRun?: boolean }) => {
      const m = manager(opts.home);
      const { argv, exitCode, sidecar, sidecarCwd } = await m.run(vm, {
        extra,
        dryRun: Boolean(opts.dryRun),
      });
      if (opts.dryRun) {
        const cwd = sidecarCwd === undefined ? {} : { swtpm_cwd: sidecarCwd };
        // Relative swtpm paths: run it in a subshell that changes to the VM directory.
        const swtpmLine =
          sidecar &&
          (sidecarCwd === undefined
            ? shellQuote(sidecar)
            : `(cd ${shellQuote([sidecarCwd])} && exec ${shellQuote(sidecar)})`);
        if (opts.json)
          io.stdout(JSON.stringify(sidecar ? { swtpm: sidecar, ...cwd, qemu: argv } : argv));
        else io.stdout(swtpmLine ? `${swtpmLine} &\n${shellQuote(argv)}` : shellQuote(argv));
      }
      ctx.setExitCode(exitCode);
    });

  addSysprepCommand(program, io, ctx.setExitCode, manager);
  addRegistryCommands(program, io, manager);

  common(program.command("script"))
    .description("write the post-install script shared/set_identifiers.sh (or print it)")
    .argument("<vm>", "VM name")
    .option("--stdout", "print the script instead of writing it")
    .action(async (vm: string, opts: CommonOptions & { stdout?: boolean }) => {
      const m = manager(opts.home);
      if (opts.stdout) {
        io.stdout(await m.renderPostInstallScript(vm));
        return;
      }
      const file = await m.createPostInstallScript(vm);
      io.stdout(opts.json ? JSON.stringify({ vm, script: file }) : `wrote ${file}`);
    });

  common(program.command("doctor"))
    .description("check the home: list every identifier value that two VMs share")
    .action(async (opts: CommonOptions) => {
      const dups = await manager(opts.home).duplicates();
      if (opts.json) {
        io.stdout(JSON.stringify({ duplicates: dups }, null, 2));
      } else if (dups.length === 0) {
        io.stdout("no duplicate identifiers");
      } else {
        io.stdout(
          formatTable([
            ["FIELD", "VALUE", "VMS"],
            ...dups.map((d) => [d.field, d.value, d.vms.join(", ")]),
          ]),
        );
      }
      if (dups.length > 0) {
        throw new GlintError(`${dups.length} identifier value(s) are shared by more than one VM`, {
          code: "conflict",
          details: { reason: "duplicates-found" },
        });
      }
    });

  common(program.command("seed"))
    .description("rebuild seed.iso, the cloud-init NoCloud seed (label cidata)")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const file = await manager(opts.home).writeSeedIso(vm);
      io.stdout(opts.json ? JSON.stringify({ vm, seed: file }) : `wrote ${file}`);
    });

  const menu = async (home: string | undefined): Promise<void> => {
    // Loaded on demand: the prompt library is only needed by the menu.
    const { startMenu } = await import("./menu/index.js");
    const code = await startMenu(manager(home), { isTTY: io.isTTY, env: process.env });
    // startMenu printed its own message; exit with its code (2 without a TTY).
    if (code !== 0) throw new CommanderError(code, "glint.menu", "");
  };
  program
    .command("menu")
    .description("interactive menu (also plain `glint` in a terminal)")
    .option("--home <dir>", "VM home directory (default: $GLINT_HOME or ./vms_linux)")
    .option("--json", "not supported by the menu; use the other commands")
    .action((opts: CommonOptions) => menu(opts.home));
  program
    .option("--home <dir>", "VM home directory (default: $GLINT_HOME or ./vms_linux)")
    .argument("[command]")
    .action(async (command: string | undefined, opts: CommonOptions) => {
      if (command !== undefined) {
        throw new UsageError(`unknown command '${command}' (run \`glint --help\` for usage)`);
      }
      if (io.isTTY) await menu(opts.home);
      else program.help({ error: true });
    });
  return program;
}

export { UsageError };
