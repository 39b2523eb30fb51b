/** The one runner of the built CLI (`node dist/cli/main.js`), and reading what it wrote. */
import { promises as fs } from "node:fs";
import path from "node:path";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import { type RunResult, run } from "./exec.js";
import { CLI, ROOT } from "./paths.js";

export type CliResult = RunResult;

export interface CliOptions {
  /** Added to (and overriding) this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Working directory; default the repository root. */
  cwd?: string;
  /** $GLINT_HOME for the child; null removes it from the environment. */
  home?: string | null;
  /** Written to stdin; without it stdin is /dev/null (never a TTY). */
  input?: string;
  timeoutMs?: number;
}

/** Run `glint …args` and collect its exit status and output ($GLINT_DEBUG is never passed). */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.home === null) delete env.GLINT_HOME;
  else if (options.home !== undefined) env.GLINT_HOME = options.home;
  delete env.GLINT_DEBUG;
  return run(process.execPath, [CLI, ...args], {
    env,
    cwd: options.cwd ?? ROOT,
    input: options.input,
    timeoutMs: options.timeoutMs,
  });
}

/** `glint …args` that must exit 0; resolves with its stdout. */
export async function runCliOk(args: readonly string[], options: CliOptions = {}): Promise<string> {
  const r = await runCli(args, options);
  if (r.code !== 0) {
    throw new Error(`glint ${args.join(" ")} exited ${r.code ?? r.signal}: ${r.stderr}`);
  }
  return r.stdout;
}

/** Lines of a text, without the trailing empty one. */
export function lines(text: string): string[] {
  return text.split("\n").filter((l, i, all) => !(l === "" && i === all.length - 1));
}

/** The identifiers.json of `vm` in `home`, as written. */
export async function readIds(home: string, vm: string): Promise<SystemIdentifiers> {
  return JSON.parse(
    await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"),
  ) as SystemIdentifiers;
}
