#!/usr/bin/env node
/**
 * Entry point of the `glint` binary.
 * Exit codes: 0 success, 1 an operation failed, 2 bad usage.
 * With `--json`, a failure prints exactly one JSON object on stderr:
 * `{"error":{"code":"…","message":"…"}}`.
 */
import { CommanderError } from "commander";
import { GlintError } from "../errors.js";
import { afterCritical, inCritical } from "../txn/critical.js";
import { systemError } from "../vm/syserror.js";
import { errorLine } from "./advice.js";
import { printable } from "./printable.js";
import { buildProgram } from "./program.js";

/** Commands that change a VM. */
const MUTATING = new Set(["create", "regen", "nuke", "reset", "script", "seed", "restore"]);

/**
 * Ctrl-C or SIGTERM while an operation commits must not leave it half-done:
 * the commit finishes (it is a critical section, see src/txn/critical.ts),
 * then glint exits with 130 (SIGINT) or 143 (SIGTERM). Outside a commit —
 * at a prompt, waiting for a lock, while preparing — glint exits at once;
 * nothing visible has changed, and the next command rolls back a prepared
 * operation. A second signal always exits at once.
 */
function exitOnSignals(): () => number | undefined {
  let received: NodeJS.Signals | undefined;
  const code = (signal: NodeJS.Signals) => 128 + (signal === "SIGINT" ? 2 : 15);
  const onSignal = (signal: NodeJS.Signals) => {
    if (received || !inCritical()) process.exit(code(signal));
    received = signal;
    process.stderr.write(
      `glint: ${signal} received; finishing the current commit so nothing is left half-done\n`,
    );
    afterCritical(() => process.exit(code(signal)));
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

/**
 * Print a failure: one line of text, or one JSON object with `--json`.
 * Control characters are escaped: messages may quote a file's content.
 */
function report(json: boolean, code: string, message: string): void {
  process.stderr.write(
    printable(json ? `${JSON.stringify({ error: { code, message } })}` : `glint: ${message}`) +
      "\n",
  );
}

export async function main(argv: readonly string[]): Promise<number> {
  const command = commandName(argv);
  const json = argv.includes("--json");
  const interrupted =
    command !== undefined && MUTATING.has(command) ? exitOnSignals() : () => undefined;
  const program = buildProgram(undefined, { jsonErrors: json });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return interrupted() ?? (typeof process.exitCode === "number" ? process.exitCode : 0);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; commander already printed its usage message.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof GlintError) {
      report(json, error.code, errorLine(error));
      return error.exitCode;
    }
    if (error instanceof Error && error.name === "ExitPromptError") {
      report(json, "cancelled", "cancelled; nothing was changed");
      return 1;
    }
    // A raw system error (ENOSPC, EROFS, EACCES, …) that carries a path: explain it.
    const explained = systemError(error);
    if (explained instanceof GlintError) {
      report(json, explained.code, errorLine(explained));
      return explained.exitCode;
    }
    const err = error as NodeJS.ErrnoException;
    if (process.env.GLINT_DEBUG) process.stderr.write(`${err?.stack ?? String(error)}\n`);
    report(json, "failed", (err?.message ?? String(error)).replace(/\s*\n\s*/g, " ").trim());
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
