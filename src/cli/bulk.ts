/**
 * Commands that act on several VMs: `glint CMD VM… | --all | --match GLOB`.
 * The set is confirmed once (count and first few names; without a TTY,
 * `--yes` is required), each VM is done in turn (or `--jobs N` at a time),
 * a failure does not stop the others, and the output is one line per VM
 * (text) or one array of `{vm, ok, result | error: {code, message}}`
 * (`--json`). On a terminal a progress bar (src/cli/progress.ts) runs under
 * the lines. The command exits 1 if any VM failed.
 *
 * A command given exactly one VM name (no `--all`, no `--match`) prints what
 * it always printed, so that scripts written for one VM keep working.
 */
import type { Command } from "commander";
import { ERROR_CODES, GlintError, messageOf, UsageError } from "../errors.js";
import type { OperationResult, UuidManager } from "../manager.js";
import { systemError } from "../vm/syserror.js";
import { errorLine } from "./advice.js";
import { type CommonOptions, operationJson, parseInteger } from "./common.js";
import { confirmByTyping, confirmYesNo, type Io } from "./io.js";
import { bulkProgress } from "./progress.js";

export interface BulkOptions extends CommonOptions {
  all?: boolean;
  match?: string;
  yes?: boolean;
  jobs?: number;
}

/** `[vm...]`, `--all`, `--match GLOB`, and `--jobs N` where `parallel`. */
export function bulkOperands(cmd: Command, parallel = false): Command {
  cmd
    .argument("[vm...]", "VM names")
    .option("--all", "every VM in the home")
    .option("--match <glob>", "every VM whose name matches GLOB (* ? [abc]; quote it)");
  if (parallel) cmd.option("--jobs <n>", "work on N VMs at a time (default 1)", parseInteger);
  return cmd;
}

/** A shell-style glob (`*`, `?`, `[…]`) as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) throw new UsageError(`--match: unclosed '[' in '${glob}'`);
      const body = glob
        .slice(i + 1, end)
        .replace(/^!/, "^")
        .replace(/\\/g, "\\\\");
      re += `[${body}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export interface Selection {
  vms: string[];
  /** More than one VM could be meant: use the per-VM output. */
  bulk: boolean;
}

/**
 * The VMs a command acts on. With neither names nor `--all`/`--match`, all
 * VMs when `defaultAll`, else a usage error.
 */
export async function selectVms(
  m: UuidManager,
  names: readonly string[],
  opts: BulkOptions,
  defaultAll = false,
): Promise<Selection> {
  if (names.length > 0 && (opts.all || opts.match !== undefined))
    throw new UsageError("name VMs, or use --all or --match, not both");
  if (opts.all && opts.match !== undefined) throw new UsageError("use --all or --match, not both");
  if (names.length === 1 && !opts.all && opts.match === undefined)
    return { vms: [...names], bulk: false };
  if (names.length > 0) return { vms: [...new Set(names)], bulk: true };
  if (!opts.all && opts.match === undefined && !defaultAll)
    throw new UsageError("name a VM, or several, or use --all or --match GLOB");
  const all = await m.listVms();
  if (opts.match === undefined) return { vms: all, bulk: true };
  const re = globToRegExp(opts.match);
  const vms = all.filter((vm) => re.test(vm));
  if (vms.length === 0)
    throw new GlintError(`no VM in ${m.home} matches '${opts.match}'`, { code: "not-found" });
  return { vms, bulk: true };
}

/** "3 VMs (a, b, c)" or "12 VMs (a, b, c, d, e and 7 more)". */
export function describeSet(vms: readonly string[]): string {
  const shown = vms.slice(0, 5).map((v) => `"${v}"`);
  const more = vms.length > 5 ? ` and ${vms.length - 5} more` : "";
  return vms.length === 1 ? `"${vms[0]}"` : `${vms.length} VMs (${shown.join(", ")}${more})`;
}

/**
 * Confirm a change once for the whole set: a yes/no question, or for
 * `typed`, the VM name (one VM) or the number of VMs typed back. Without a
 * TTY and without `--yes`: a usage error (exit 2).
 */
export async function confirmSet(
  io: Io,
  question: (set: string) => string,
  vms: readonly string[],
  opts: { yes?: boolean; typed?: boolean },
  command: string,
): Promise<void> {
  if (opts.yes || vms.length === 0) return;
  const q = question(describeSet(vms));
  const expected = vms.length === 1 ? (vms[0] ?? "") : String(vms.length);
  const ok = opts.typed
    ? await confirmByTyping(io, q, expected, "--yes")
    : await confirmYesNo(io, q, "--yes");
  if (!ok) throw new GlintError(`${command} cancelled; nothing was changed`, { code: "cancelled" });
}

interface Outcome<T> {
  vm: string;
  ok: boolean;
  result?: T;
  error?: { code: string; message: string };
}

function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof GlintError) return { code: error.code, message: errorLine(error) };
  const explained = systemError(error);
  if (explained instanceof GlintError)
    return { code: explained.code, message: errorLine(explained) };
  return { code: "failed", message: messageOf(error) };
}

/**
 * Run `task` on every VM (`jobs` at a time), print one line per VM as each
 * finishes (text) or the array at the end (`--json`); exit 1 if any failed.
 */
export async function forEachVm<T>(
  io: Io,
  vms: readonly string[],
  opts: { json?: boolean; jobs?: number },
  task: (vm: string) => Promise<T>,
  line: (vm: string, result: T) => string,
  toJson: (result: T) => unknown = (r) => r,
): Promise<void> {
  const outcomes: Outcome<T>[] = new Array(vms.length);
  const bar = await bulkProgress(vms.length, io.barStream, opts.json);
  let next = 0;
  const worker = async () => {
    while (next < vms.length) {
      const i = next++;
      const vm = vms[i] ?? "";
      let outcome: Outcome<T>;
      try {
        const result = await task(vm);
        outcome = { vm, ok: true, result };
        if (!opts.json) bar.line(() => io.stdout(line(vm, result)));
      } catch (error) {
        outcome = { vm, ok: false, error: describeError(error) };
        if (!opts.json) bar.line(() => io.stdout(`${vm}: FAILED: ${outcome.error?.message}`));
      }
      outcomes[i] = outcome;
      bar.tick(!outcome.ok);
    }
  };
  const jobs = Math.max(1, Math.min(opts.jobs ?? 1, vms.length));
  try {
    await Promise.all(Array.from({ length: jobs }, worker));
  } finally {
    bar.stop();
  }
  if (opts.json)
    io.stdout(
      JSON.stringify(
        outcomes.map((o) => (o.ok ? { vm: o.vm, ok: true, result: toJson(o.result as T) } : o)),
        null,
        2,
      ),
    );
  const failed = outcomes.filter((o) => !o.ok);
  const only = failed.length === 1 ? failed[0] : undefined;
  if (only?.error)
    // One failure: its own message (and code) on stderr too.
    throw new GlintError(`${only.vm}: ${only.error.message}`, {
      code: ERROR_CODES.find((c) => c === only.error?.code && c !== "usage") ?? "failed",
    });
  if (failed.length > 0)
    throw new GlintError(
      `${failed.length} of ${vms.length} VMs failed: ${failed.map((o) => o.vm).join(", ")}`,
    );
}

/** An operation's result in a `--json` array element. */
export function resultJson(r: OperationResult): unknown {
  return operationJson(r);
}
