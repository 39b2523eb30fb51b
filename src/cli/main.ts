#!/usr/bin/env node
/**
 * Entry point of the `glint` binary.
 * Exit codes: 0 success, 1 an operation failed, 2 bad usage.
 */
import { CommanderError } from "commander";
import { GlintError } from "../errors.js";
import { buildProgram } from "./program.js";

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
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
