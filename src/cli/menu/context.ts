/**
 * What every menu option shares: the prompt functions it is given, the
 * context it runs in, and the helpers that pick a VM, show progress and
 * report a refusal on one line.
 */
import type { confirm, input, select } from "@inquirer/prompts";
import { GlintError } from "../../errors.js";
import type { ResetStep } from "../../identity/policies.js";
import type { VmConfig } from "../../vm/config.js";
import { errorLine } from "../advice.js";
import type { MenuApi } from "./api.js";
import type { Spinner } from "./spinner.js";
import type { Paint } from "./style.js";

export interface MenuDeps {
  select: typeof select;
  input: typeof input;
  confirm: typeof confirm;
  /** Where the menu's own output goes (one call per block of lines). */
  print: (text: string) => void;
  /** Colour the menu's own output. */
  color: boolean;
  /** Shown while an operation runs; `onProgress` messages update it. */
  spinner: (text: string) => Spinner;
}

/** The main menu's options. */
export type MenuAction =
  | "view"
  | "regen-disk"
  | "regen-base"
  | "nuke"
  | "reset-uefi"
  | "reset-tpm"
  | "qemu"
  | "script"
  | "create"
  | "exit";

/** Choice values that cannot be VM names (VM_NAME_RE forbids them). */
export const ALL_VMS = "*all*";
const BACK = "*back*";

export const STEP_LABELS: Record<ResetStep, string> = {
  uefi: "UEFI variables",
  tpm: "TPM",
  overlay: "overlay",
  "disk-identity": "disk identity (sysprep)",
  "guest-files": "post-install script and seed.iso",
};

/** Ctrl-C (ExitPromptError), Esc (AbortPromptError) or a cancelled prompt. */
export function isPromptCancel(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error.name === "ExitPromptError" ||
    error.name === "AbortPromptError" ||
    error.name === "CancelPromptError"
  );
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

export interface Ctx {
  readonly api: MenuApi;
  readonly deps: MenuDeps;
  readonly c: Paint;
}

export type Action = (ctx: Ctx, vms: readonly string[]) => Promise<void>;

/** Run one menu option; report a cancel or an error and return to the menu. */
export async function guarded(ctx: Ctx, fn: () => Promise<void>): Promise<void> {
  const { deps, c } = ctx;
  try {
    await fn();
  } catch (error) {
    if (isPromptCancel(error)) {
      deps.print(c.dim("Cancelled; nothing was changed."));
    } else if (error instanceof GlintError) {
      deps.print(c.red(`✖ ${errorLine(error)}`));
    } else {
      const message = error instanceof Error ? error.message : String(error);
      deps.print(c.red(`✖ failed: ${oneLine(message)}`));
    }
  }
  deps.print("");
}

export async function withSpinner<T>(
  ctx: Ctx,
  text: string,
  fn: (onProgress: (message: string) => void) => Promise<T>,
): Promise<T> {
  const spinner = ctx.deps.spinner(text);
  // Ctrl-C while an operation runs must not leave it half-done: the operation
  // finishes (it is all-or-nothing under the VM lock) and the menu comes back.
  const onInterrupt = () =>
    spinner.update("finishing the current operation (it cannot be interrupted)…");
  process.on("SIGINT", onInterrupt);
  try {
    return await fn((message) => spinner.update(message));
  } finally {
    process.off("SIGINT", onInterrupt);
    spinner.stop();
  }
}

/** Ask for one VM out of `vms`; `undefined` for "Back". */
export async function pickVm(
  ctx: Ctx,
  message: string,
  vms: readonly string[],
  options: { all?: boolean } = {},
): Promise<string | undefined> {
  const choices = [
    ...vms.map((vm) => ({ value: vm, name: vm })),
    ...(options.all ? [{ value: ALL_VMS, name: "All VMs" }] : []),
    { value: BACK, name: ctx.c.dim("Back") },
  ];
  const picked = await ctx.deps.select<string>({ message, choices, loop: false });
  return picked === BACK ? undefined : picked;
}

/** The VMs whose config passes `test` (an unreadable config does not). */
export async function vmsWhere(
  ctx: Ctx,
  vms: readonly string[],
  test: (config: VmConfig) => boolean,
): Promise<string[]> {
  const out: string[] = [];
  for (const vm of vms) {
    try {
      if (test(await ctx.api.getConfig(vm))) out.push(vm);
    } catch {
      // A VM with a broken config.json is shown by "View", not offered here.
    }
  }
  return out;
}
