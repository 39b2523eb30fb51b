/**
 * The interactive menu (`glint menu`, or plain `glint` in a terminal). Every
 * option asks its questions first and then calls one MenuApi (UuidManager)
 * method — the same API the commands use — so nothing is implemented twice
 * and a cancelled prompt never leaves anything half-done.
 *
 * Ctrl-C or Esc at any prompt goes back to the main menu; at the main menu it
 * leaves. A GlintError (a busy VM, a missing tool, …) is printed on one line
 * and the menu carries on.
 */
import os from "node:os";
import path from "node:path";
import type { confirm, input, select } from "@inquirer/prompts";
import { Separator } from "@inquirer/prompts";
import { GlintError } from "../../errors.js";
import { VM_NAME_RE } from "../../identity/formats.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../identity/model.js";
import { keptFields, POLICIES, type Policy, type ResetStep } from "../../identity/policies.js";
import type { OperationResult } from "../../manager.js";
import { shellQuote } from "../../qemu/argv.js";
import { DISK_SIZE_RE } from "../../qemu/img.js";
import { FIRMWARE_KINDS, type FirmwareKind, type VmConfig } from "../../vm/config.js";
import { isFile } from "../../vm/fsutil.js";
import { formatComparison, formatIdentity, label } from "../format.js";
import type { CreateVmOptions, MenuApi } from "./api.js";
import type { Spinner } from "./spinner.js";
import { type Paint, paint } from "./style.js";

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

export const MAIN_MENU_MESSAGE = "What would you like to do?";

/** Choice values that cannot be VM names (VM_NAME_RE forbids them). */
const ALL_VMS = "*all*";
const BACK = "*back*";

const STEP_LABELS: Record<ResetStep, string> = {
  uefi: "UEFI variables",
  tpm: "TPM",
  overlay: "overlay",
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

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

interface Ctx {
  readonly api: MenuApi;
  readonly deps: MenuDeps;
  readonly c: Paint;
}

type Action = (ctx: Ctx, vms: readonly string[]) => Promise<void>;

function mainChoices(c: Paint) {
  return [
    {
      value: "view",
      name: "View VM identifiers",
      description: "every identifier of one VM or of all VMs, with created/updated times",
    },
    { value: "regen-disk", name: POLICIES.disk.title, description: POLICIES.disk.description },
    { value: "regen-base", name: POLICIES.base.title, description: POLICIES.base.description },
    { value: "nuke", name: c.red(POLICIES.nuke.title), description: POLICIES.nuke.description },
    new Separator(),
    {
      value: "reset-uefi",
      name: "Reset UEFI variables",
      description:
        "a fresh UEFI variable store (boot entries, Secure Boot state); identifiers stay",
    },
    {
      value: "reset-tpm",
      name: "Reset TPM",
      description: "wipe the TPM state and create a new TPM with a new endorsement key",
    },
    {
      value: "qemu",
      name: "Show QEMU command",
      description: "the command line that boots the VM with its identity",
    },
    {
      value: "script",
      name: "Write post-install script",
      description: "shared/set_identifiers.sh applies the identity inside the guest",
    },
    new Separator(),
    { value: "create", name: "Create a new VM", description: "new VM with all-new identifiers" },
    { value: "exit", name: "Exit" },
  ] as const;
}

/** Run the menu until the user leaves. Only a failure to list the VMs is thrown. */
export async function runMenu(api: MenuApi, deps: MenuDeps): Promise<void> {
  const ctx: Ctx = { api, deps, c: paint(deps.color) };
  const { c } = ctx;
  deps.print(c.bold(`Glint: VM identities in ${api.home}`));
  deps.print(c.dim("↑/↓ move · Enter choose · Esc back · Ctrl-C leave"));
  for (;;) {
    const vms = await api.listVms();
    if (vms.length === 0) {
      let create: boolean;
      try {
        create = await deps.confirm({
          message: `There are no VMs in ${api.home} yet. Create one now?`,
          default: true,
        });
      } catch (error) {
        if (isPromptCancel(error)) return;
        throw error;
      }
      if (!create) return;
      await guarded(ctx, () => createFlow(ctx, vms));
      continue;
    }
    let action: MenuAction;
    try {
      action = await deps.select<MenuAction>({
        message: MAIN_MENU_MESSAGE,
        choices: mainChoices(c),
        pageSize: 15,
        loop: true,
      });
    } catch (error) {
      if (isPromptCancel(error)) return;
      throw error;
    }
    if (action === "exit") return;
    await guarded(ctx, () => ACTIONS[action](ctx, vms));
  }
}

/** Run one menu option; report a cancel or an error and return to the menu. */
async function guarded(ctx: Ctx, fn: () => Promise<void>): Promise<void> {
  const { deps, c } = ctx;
  try {
    await fn();
  } catch (error) {
    if (isPromptCancel(error)) {
      deps.print(c.dim("Cancelled; nothing was changed."));
    } else if (error instanceof GlintError) {
      deps.print(c.red(`✖ ${oneLine(error.message)}`));
    } else {
      const message = error instanceof Error ? error.message : String(error);
      deps.print(c.red(`✖ failed: ${oneLine(message)}`));
    }
  }
  deps.print("");
}

async function withSpinner<T>(
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
async function pickVm(
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
async function vmsWhere(
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

function describeConfig(config: VmConfig): string {
  const firmware =
    config.firmware === "uefi-secure"
      ? "UEFI + Secure Boot"
      : config.firmware === "uefi"
        ? "UEFI"
        : "BIOS";
  return `firmware: ${firmware} · TPM: ${config.tpm ? "yes" : "no"} · overlay: ${config.overlay ? "yes" : "no"}`;
}

function labels(fields: readonly string[]): string {
  return fields.length ? fields.map(label).join(", ") : "nothing";
}

/** What an operation did: kept and changed fields, old beside new, reset steps. */
export function describeResult(result: OperationResult, c: Paint = paint(false)): string {
  const policy = POLICIES[result.policy];
  const lines = [c.green(`✔ ${policy.title}: ${result.vm}`)];
  const { previous, identifiers } = result;
  if (previous) {
    const changed = IDENTIFIER_FIELDS.filter((f) => previous[f] !== identifiers[f]);
    lines.push(`Kept:    ${labels(keptFields(policy))}`);
    lines.push(`Changed: ${labels(changed)}`);
    lines.push("", formatComparison(previous, identifiers));
  } else {
    lines.push(formatIdentity(identifiers, "  "));
  }
  const steps = Object.entries(result.steps) as [ResetStep, string][];
  if (steps.length) {
    lines.push("", `Reset: ${steps.map(([s, o]) => `${STEP_LABELS[s] ?? s} ${o}`).join(", ")}`);
  }
  if (result.archived) lines.push(`The previous identity is kept in ${result.archived}`);
  return lines.join("\n");
}

function policyPreview(policy: Policy, c: Paint): string {
  return [
    `  Draws anew: ${labels(policy.regenerate)}`,
    `  Keeps:      ${labels(keptFields(policy))}`,
    `  Resets:     ${policy.reset.map((s) => STEP_LABELS[s]).join(", ")}`,
  ]
    .map((l) => c.dim(l))
    .join("\n");
}

// ---------------------------------------------------------------------------
// The options.

const view: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  const picked = await pickVm(ctx, "View the identifiers of which VM?", vms, { all: true });
  if (picked === undefined) return;
  const names = picked === ALL_VMS ? vms : [picked];
  const blocks: string[] = [];
  for (const vm of names) {
    try {
      const ids = await api.getIdentifiers(vm);
      const config = await api.getConfig(vm);
      blocks.push(`${c.bold(vm)}  ${c.dim(describeConfig(config))}\n${formatIdentity(ids, "  ")}`);
    } catch (error) {
      if (names.length === 1) throw error;
      const message = error instanceof Error ? error.message : String(error);
      blocks.push(`${c.bold(vm)}\n  ${c.red(`unusable: ${oneLine(message)}`)}`);
    }
  }
  deps.print(blocks.join("\n\n"));
};

const regenDisk: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  const candidates = await vmsWhere(ctx, vms, (cfg) => cfg.overlay);
  if (candidates.length === 0) {
    deps.print(
      "No VM uses an overlay disk. Create one with a base image and an overlay, or use “Regenerate base image identifiers”.",
    );
    return;
  }
  const vm = await pickVm(ctx, "Regenerate the overlay of which VM?", candidates);
  if (vm === undefined) return;
  deps.print(
    [
      `${c.bold(POLICIES.disk.title)}: ${vm}`,
      policyPreview(POLICIES.disk, c),
      c.dim(
        "  The VM gets a fresh, empty overlay on its base image; the old overlay is kept in history/.",
      ),
    ].join("\n"),
  );
  const ok = await deps.confirm({ message: `Regenerate the overlay of "${vm}"?`, default: false });
  if (!ok) {
    deps.print(c.dim("Nothing was changed."));
    return;
  }
  const result = await withSpinner(ctx, `Regenerating the overlay of ${vm}…`, (onProgress) =>
    api.regenerateDiskIdentifiers(vm, { onProgress }),
  );
  deps.print(describeResult(result, c));
};

const regenBase: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  deps.print(
    [
      c.bold(POLICIES.base.title),
      "Use this when:",
      "  • this VM (or its disk) was cloned from another VM, so both share identifiers, or",
      "  • you created a new base image, or made major changes to it.",
      "It draws every identifier anew, resets the UEFI variables and writes a new",
      "post-install script (shared/set_identifiers.sh) and seed.iso; run the script in the",
      "guest so that the OS takes on the new identity. The disk and the TPM are not touched.",
    ].join("\n"),
  );
  const vm = await pickVm(ctx, "Regenerate the base identifiers of which VM?", vms);
  if (vm === undefined) return;
  const ok = await deps.confirm({
    message: `Regenerate every identifier of "${vm}"?`,
    default: false,
  });
  if (!ok) {
    deps.print(c.dim("Nothing was changed."));
    return;
  }
  const result = await withSpinner(ctx, `Regenerating the identifiers of ${vm}…`, (onProgress) =>
    api.regenerateBaseIdentifiers(vm, { onProgress }),
  );
  deps.print(describeResult(result, c));
};

/** What NUKE destroys on this VM, item by item. */
export function nukePreview(
  vm: string,
  ids: SystemIdentifiers,
  config: VmConfig,
  c: Paint = paint(false),
): string {
  const width = Math.max(...IDENTIFIER_FIELDS.map((f) => label(f).length));
  const uefi = config.firmware !== "bios";
  return [
    c.red(c.bold(`NUKE "${vm}": this destroys`)),
    "  • every identifier (all are drawn anew):",
    ...IDENTIFIER_FIELDS.map((f) => `      ${label(f).padEnd(width)}  ${ids[f]}`),
    uefi
      ? "  • the UEFI variables: boot entries and firmware settings go back to the defaults"
      : "  • UEFI variables: none (BIOS firmware)",
    config.firmware === "uefi-secure"
      ? "  • the Secure Boot state: enrolled keys and variables are reset"
      : "  • Secure Boot: not enabled",
    config.tpm
      ? "  • the TPM: its state is wiped and a new TPM gets a new endorsement key; secrets sealed to it are lost"
      : "  • TPM: none",
    config.overlay
      ? "  • the overlay: the VM restarts from its base image; everything written since is gone (the old overlay is kept in history/)"
      : "  • overlay: none (the disk itself is not touched)",
    c.dim("  The old identifiers are kept in history/."),
  ].join("\n");
}

const nuke: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  const vm = await pickVm(ctx, "NUKE which VM?", vms);
  if (vm === undefined) return;
  const ids = await api.getIdentifiers(vm);
  const config = await api.getConfig(vm);
  deps.print(nukePreview(vm, ids, config, c));
  const typed = await deps.input({
    message: `Type the VM name "${vm}" to NUKE it (Esc to go back):`,
  });
  if (typed.trim() !== vm) {
    deps.print(c.yellow("The name did not match; nothing was changed."));
    return;
  }
  const result = await withSpinner(ctx, `NUKE ${vm}…`, (onProgress) =>
    api.nukeAndRegenerateAll(vm, { onProgress }),
  );
  deps.print(describeResult(result, c));
};

const resetUefi: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  const candidates = await vmsWhere(ctx, vms, (cfg) => cfg.firmware !== "bios");
  if (candidates.length === 0) {
    deps.print("No VM uses UEFI firmware, so there are no UEFI variables to reset.");
    return;
  }
  const vm = await pickVm(ctx, "Reset the UEFI variables of which VM?", candidates);
  if (vm === undefined) return;
  const ok = await deps.confirm({
    message: `Reset the UEFI variables of "${vm}"? Boot entries, firmware settings and the Secure Boot state go back to the defaults.`,
    default: false,
  });
  if (!ok) {
    deps.print(c.dim("Nothing was changed."));
    return;
  }
  await withSpinner(ctx, `Resetting the UEFI variables of ${vm}…`, () =>
    api.resetUefiVariables(vm),
  );
  deps.print(c.green(`✔ The UEFI variables of ${vm} were reset.`));
};

const resetTpm: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  const candidates = await vmsWhere(ctx, vms, (cfg) => cfg.tpm);
  if (candidates.length === 0) {
    deps.print("No VM has a TPM.");
    return;
  }
  const vm = await pickVm(ctx, "Reset the TPM of which VM?", candidates);
  if (vm === undefined) return;
  const ok = await deps.confirm({
    message: `Reset the TPM of "${vm}"? Keys sealed to it (e.g. disk unlock) are lost.`,
    default: false,
  });
  if (!ok) {
    deps.print(c.dim("Nothing was changed."));
    return;
  }
  const ek = await withSpinner(ctx, `Resetting the TPM of ${vm}…`, () => api.resetTpm(vm));
  deps.print(c.green(`✔ The TPM of ${vm} was reset; new EK ${ek}.`));
};

/**
 * A shell-quoted command, one option (with its value) per line, joined with
 * backslash-newlines so that it can be pasted into a shell as it is.
 */
export function formatCommand(argv: readonly string[]): string {
  const groups: string[][] = [];
  for (const arg of argv) {
    const last = groups.at(-1);
    if (!last || arg.startsWith("-")) groups.push([arg]);
    else last.push(arg);
  }
  return groups.map((g) => shellQuote(g)).join(" \\\n  ");
}

const qemu: Action = async (ctx, vms) => {
  const vm = await pickVm(ctx, "Show the QEMU command of which VM?", vms);
  if (vm === undefined) return;
  ctx.deps.print(formatCommand(await ctx.api.qemuCommand(vm)));
};

const script: Action = async (ctx, vms) => {
  const { api, deps, c } = ctx;
  const vm = await pickVm(ctx, "Write the post-install script of which VM?", vms);
  if (vm === undefined) return;
  const file = await api.createPostInstallScript(vm);
  deps.print(
    `${c.green(`✔ Wrote ${file}`)}\nRun it as root inside the guest to apply the identity of ${vm}.`,
  );
};

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p;
}

const FIRMWARE_NAMES: Record<FirmwareKind, string> = {
  bios: "BIOS",
  uefi: "UEFI",
  "uefi-secure": "UEFI with Secure Boot",
};

async function createFlow(ctx: Ctx, existing: readonly string[]): Promise<void> {
  const { api, deps, c } = ctx;
  const name = (
    await deps.input({
      message: "Name of the new VM (it becomes the hostname):",
      validate: (value) => {
        const v = value.trim();
        if (!VM_NAME_RE.test(v))
          return "use 1–63 lowercase letters, digits and '-', starting with a letter or digit";
        if (existing.includes(v)) return `there is already a VM named "${v}"`;
        return true;
      },
    })
  ).trim();
  const baseAnswer = (
    await deps.input({
      message: "Base image to start from (path to a qcow2 image; leave empty for none):",
      validate: async (value) => {
        const v = value.trim();
        if (v === "") return true;
        return (await isFile(path.resolve(expandHome(v)))) || `no such file: ${v}`;
      },
    })
  ).trim();
  const base = baseAnswer === "" ? undefined : path.resolve(expandHome(baseAnswer));
  const overlay =
    base === undefined
      ? false
      : await deps.confirm({
          message: "Put a copy-on-write overlay on the base image (so it can be regenerated)?",
          default: true,
        });
  const diskSize =
    base !== undefined
      ? ""
      : (
          await deps.input({
            message: "Size of a blank disk, e.g. 8G (leave empty for no disk):",
            validate: (value) => {
              const v = value.trim().toUpperCase();
              return v === "" || DISK_SIZE_RE.test(v) || "use a size like 512M or 8G";
            },
          })
        )
          .trim()
          .toUpperCase();
  const firmware = await deps.select<FirmwareKind>({
    message: "Firmware:",
    choices: FIRMWARE_KINDS.map((f) => ({ value: f, name: FIRMWARE_NAMES[f] })),
    default: "bios",
  });
  const tpm = await deps.confirm({ message: "Add a TPM 2.0?", default: false });
  const options: CreateVmOptions = { firmware, tpm };
  if (base !== undefined) {
    options.base = base;
    options.overlay = overlay;
  }
  if (diskSize !== "") options.diskSize = diskSize;
  const result = await withSpinner(ctx, `Creating ${name}…`, (onProgress) =>
    api.createVm(name, { ...options, onProgress }),
  );
  deps.print(`${c.green(`✔ Created ${name}`)}\n${formatIdentity(result.identifiers, "  ")}`);
}

const ACTIONS: Record<Exclude<MenuAction, "exit">, Action> = {
  view,
  "regen-disk": regenDisk,
  "regen-base": regenBase,
  nuke,
  "reset-uefi": resetUefi,
  "reset-tpm": resetTpm,
  qemu,
  script,
  create: createFlow,
};
