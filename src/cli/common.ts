/**
 * What every `glint` command module shares: the options every command takes
 * (`--home`, `--json`), option parsers, progress lines and the rendering of
 * an operation's result. Each command lives in src/cli/commands/<verb>.ts and
 * exports one function that registers it on the program (program.ts).
 */
import { type Command, InvalidArgumentError } from "commander";
import { UsageError } from "../errors.js";
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

export const HOME_HELP =
  "VM home directory (default: $GLINT_HOME, else `home` in the config file, else ./vms_linux)";

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
    io.stdout(JSON.stringify(operationJson(result), null, 2));
    return;
  }
  const policy = POLICIES[result.policy];
  const lines = [`${policy.title}: ${result.vm}`];
  if (result.previous) lines.push(formatComparison(result.previous, result.identifiers));
  else lines.push(formatIdentity(result.identifiers));
  const steps = describeSteps(result);
  if (steps) lines.push(steps);
  if (result.archived) lines.push(`previous identity kept in ${result.archived}`);
  io.stdout(lines.join("\n"));
}

/**
 * Extra operands (QEMU arguments) of `glint run VM -- ARGS…`: refuses any
 * that were not given after `--`, such as a second VM name (exit 2).
 */
export function afterDoubleDash(cmd: Command, extra: readonly string[], what: string): string[] {
  let root = cmd;
  while (root.parent) root = root.parent;
  // commander keeps the words it parsed (not in its typings).
  const raw = (root as unknown as { rawArgs: string[] }).rawArgs;
  const dash = raw.indexOf("--");
  const after = dash < 0 ? [] : raw.slice(dash + 1);
  const tail = after.slice(after.length - extra.length);
  if (extra.length > after.length || tail.some((a, i) => a !== extra[i])) {
    const stray = extra.slice(0, extra.length - Math.min(extra.length, after.length));
    throw new UsageError(
      `${cmd.name()} takes one VM, and ${what} only after \`--\`; unexpected ${stray.map((s) => `'${s}'`).join(" ")} (e.g. \`glint ${cmd.name()} VM -- -m 2048\`)`,
    );
  }
  return [...extra];
}

/**
 * `--json` for create, regen and nuke: `{vm, policy, identifiers, steps,
 * archived}` (archived: the history/ copy of the previous identifiers, or null).
 */
export function operationJson(r: OperationResult): Record<string, unknown> {
  return {
    vm: r.vm,
    policy: r.policy,
    identifiers: identifiersToDict(r.identifiers),
    steps: r.steps,
    archived: r.archived ?? null,
  };
}

const STEP_WORDS: Record<string, string> = {
  uefi: "UEFI variables",
  tpm: "TPM",
  overlay: "overlay",
  "guest-files": "guest files (post-install script and cloud-init seed)",
  "disk-identity": "the identity written into the VM's disk",
};

/** The reset steps that ran, in words (steps that did not apply are left out). */
function describeSteps(r: OperationResult): string {
  const done = Object.entries(r.steps)
    .filter(([, outcome]) => outcome === "done")
    .map(([step]) => STEP_WORDS[step] ?? step);
  return done.length ? `Also reset or rewritten: ${done.join(", ")}.` : "";
}
