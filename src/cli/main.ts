#!/usr/bin/env node
/**
 * Entry point of the `glint` binary.
 * Exit codes: 0 success, 1 an operation failed, 2 bad usage.
 */
import { CommanderError } from "commander";
import { GlintError } from "../errors.js";
import { systemError } from "../vm/syserror.js";
import { printable } from "./printable.js";
import { buildProgram } from "./program.js";

/** One line, with control characters escaped (messages may quote file content). */
function oneLine(text: string): string {
  return printable(text.replace(/\s*\n\s*/g, " ").trim());
}

/** Commands that change a VM. */
const MUTATING = new Set(["create", "regen", "nuke", "reset", "script", "seed"]);

/**
 * Ctrl-C or SIGTERM while a command changes a VM must not leave it half-done:
 * the running operation finishes (it is all-or-nothing under the VM lock),
 * then glint exits with 130 (SIGINT) or 143 (SIGTERM). A second signal forces
 * the exit; the next command on the VM then finishes the interrupted
 * operation from its journal.
 */
function deferSignals(): () => number | undefined {
  let received: NodeJS.Signals | undefined;
  const code = (signal: NodeJS.Signals) => 128 + (signal === "SIGINT" ? 2 : 15);
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) process.exit(code(signal));
    received = signal;
    process.stderr.write(
      `glint: ${signal} received; finishing the current operation so nothing is left half-done\n`,
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return () => (received ? code(received) : undefined);
}

/** The command word of `argv`, skipping root options and the value of `--home DIR`. */
function commandName(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--home") i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

export async function main(argv: readonly string[]): Promise<number> {
  const command = commandName(argv);
  const interrupted =
    command !== undefined && MUTATING.has(command) ? deferSignals() : () => undefined;
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return interrupted() ?? (typeof process.exitCode === "number" ? process.exitCode : 0);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; commander already printed its usage message.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof GlintError) {
      process.stderr.write(`glint: ${oneLine(error.message)}\n`);
      return error.exitCode;
    }
    if (error instanceof Error && error.name === "ExitPromptError") {
      process.stderr.write("glint: cancelled; nothing was changed\n");
      return 1;
    }
    // A raw system error (ENOSPC, EROFS, EACCES, …) that carries a path: explain it.
    const explained = systemError(error);
    if (explained instanceof GlintError) {
      process.stderr.write(`glint: ${oneLine(explained.message)}\n`);
      return explained.exitCode;
    }
    const err = error as NodeJS.ErrnoException;
    if (process.env.GLINT_DEBUG) process.stderr.write(`${err?.stack ?? String(error)}\n`);
    process.stderr.write(`glint: ${oneLine(err?.message ?? String(error))}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`glint: ${String(error)}\n`);
    process.exitCode = 1;
  },
);
