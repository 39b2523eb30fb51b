/**
 * The `glint` command line. Every command takes `--home` and `--json`, calls
 * the UuidManager API (the menu calls the same API) and prints either text or
 * JSON. Errors become one line on stderr; see main.ts for exit codes.
 *
 * Each command lives in its own module, src/cli/commands/<verb>.ts, which
 * exports a function that registers it; this file assembles them. What they
 * share (options, parsers, result rendering) is in common.ts.
 */
import { Command } from "commander";
import { UsageError } from "../errors.js";
import { UuidManager } from "../manager.js";
import { addAuditCommand } from "./commands/audit.js";
import { addBackupCommands } from "./commands/backup.js";
import { addCompletionCommands } from "./commands/completion.js";
import { addCreateCommand } from "./commands/create.js";
import { addDoctorCommand } from "./commands/doctor.js";
import { addEditCommand } from "./commands/edit.js";
import { addHistoryCommand } from "./commands/history.js";
import { addLibvirtCommands } from "./commands/libvirt.js";
import { addLifecycleCommands } from "./commands/lifecycle.js";
import { addListCommand } from "./commands/list.js";
import { addMenuCommand } from "./commands/menu.js";
import { addNukeCommand } from "./commands/nuke.js";
import { addQemuArgsCommand } from "./commands/qemu-args.js";
import { addRegenCommand } from "./commands/regen.js";
import { addResetCommand } from "./commands/reset.js";
import { addRunCommand } from "./commands/run.js";
import { addScriptCommand } from "./commands/script.js";
import { addSeedCommand } from "./commands/seed.js";
import { addShowCommand } from "./commands/show.js";
import { addSysprepCommand } from "./commands/sysprep.js";
import { addTemplateCommands } from "./commands/template.js";
import { addVerifyCommand } from "./commands/verify.js";
import type { CliEnv } from "./common.js";
import { configuredHome } from "./config.js";
import { type Io, processIo } from "./io.js";
import { printable, printableIo } from "./printable.js";
import { addRegistryCommands } from "./registry.js";

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
  manager: (home) => {
    // --home, then $GLINT_HOME (read by the manager), then the config file, then ./vms_linux.
    const chosen =
      home ?? (process.env.GLINT_HOME === undefined ? configuredHome(process.env) : undefined);
    return new UuidManager({
      ...(chosen === undefined ? {} : { home: chosen }),
      command: ["glint", ...process.argv.slice(2)].join(" "),
      onNotice: (message) => processIo.stderr(printable(`glint: note: ${message}`)),
    });
  },
};

export interface ProgramOptions {
  /** Print usage errors as `{"error":{"code":"usage","message":…}}` (for `--json`). */
  jsonErrors?: boolean;
}

/** The commands, in the order `glint --help` lists them. */
const COMMANDS: readonly ((program: Command, env: CliEnv) => void)[] = [
  addCreateCommand,
  addListCommand,
  addShowCommand,
  addRegenCommand,
  addNukeCommand,
  addHistoryCommand,
  addResetCommand,
  addQemuArgsCommand,
  addRunCommand,
  addSysprepCommand,
  addVerifyCommand,
  addLibvirtCommands,
  (program, env) => addRegistryCommands(program, env.io, env.manager),
  addScriptCommand,
  addDoctorCommand,
  addSeedCommand,
  addLifecycleCommands,
  addEditCommand,
  addAuditCommand,
  addBackupCommands,
  addTemplateCommands,
  addCompletionCommands,
  addMenuCommand,
];

export function buildProgram(
  ctx: ProgramContext = defaultContext,
  options: ProgramOptions = {},
): Command {
  const program = new Command("glint")
    .description("Give every QEMU/KVM Linux VM a unique, checkable identity")
    .version("0.1.0")
    .usage("[options] [command]")
    .enablePositionalOptions()
    // Set before any subcommand is added: commander copies these settings to
    // subcommands when they are created. Usage errors become one line and
    // exit code 2 (see main.ts).
    .exitOverride();
  const env: CliEnv = {
    // Every line printed may quote a file's content: escape control characters.
    io: printableIo(ctx.io),
    setExitCode: ctx.setExitCode,
    // `glint --home DIR <command>` and `glint <command> --home DIR` both work.
    manager: (home) => ctx.manager(home ?? program.opts<{ home?: string }>().home),
  };
  program.configureOutput({
    writeOut: (s) => env.io.stdout(s),
    writeErr: (s) => env.io.stderr(s),
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
  for (const add of COMMANDS) add(program, env);
  return program;
}

export { UsageError };
