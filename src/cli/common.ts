/**
 * What every `glint` command module shares: the options every command takes
 * (`--home`, `--json`), option parsers, progress lines and the rendering of
 * an operation's result. Each command lives in src/cli/commands/<verb>.ts and
 * exports one function that registers it on the program (program.ts).
 */
import { type Command, InvalidArgumentError } from "commander";
import { identifiersToDict } from "../identity/model.js";
import { POLICIES } from "../identity/policies.js";
import type { OperationResult, UuidManager } from "../manager.js";
import { formatComparison, formatIdentity } from "./format.js";
import type { Io } from "./io.js";

/** What a command module needs from the program that registers it. */
export interface CliEnv {
  /** Output, with control characters escaped (see printable.ts). */
  io: Io;
  /** Exit code of a command that ran something (e.g. QEMU's, for `glint run`). */
  setExitCode: (code: number) => void;
  /** The manager for a command's `--home` (falling back to `glint --home`). */
  manager: (home: string | undefined) => UuidManager;
}

export interface CommonOptions {
  home?: string;
  json?: boolean;
}

export const HOME_HELP = "VM home directory (default: $GLINT_HOME or ./vms_linux)";

/** Options shared by every command. */
export function common(cmd: Command): Command {
  return cmd.option("--home <dir>", HOME_HELP).option("--json", "print JSON instead of text");
}

export function parseInteger(value: string): number {
  if (!/^[1-9][0-9]{0,6}$/.test(value))
    throw new InvalidArgumentError("expected a positive integer.");
  return Number(value);
}

/** Drop keys whose value is undefined (exactOptionalPropertyTypes-friendly spreading). */
export function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A progress reporter: one line on stderr per step (silent with --json). */
export function progress(io: Io, json: boolean | undefined): (message: string) => void {
  return (message) => {
    if (!json) io.stderr(`… ${message}`);
  };
}

export function printResult(io: Io, result: OperationResult, json: boolean | undefined): void {
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
