/** The menu's options: each asks its questions, then calls one MenuApi method. */
import { POLICIES } from "../../identity/policies.js";
import { stepApplies } from "../../ops/reset-steps.js";
import { formatIdentity } from "../format.js";
import {
  type Action,
  ALL_VMS,
  type MenuAction,
  oneLine,
  pickVm,
  vmsWhere,
  withSpinner,
} from "./context.js";
import { createFlow } from "./create.js";
import {
  describeConfig,
  describeResult,
  formatCommand,
  nukePreview,
  policyPreview,
} from "./describe.js";

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
  const candidates = await vmsWhere(ctx, vms, (cfg) => stepApplies("overlay", cfg));
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
  const candidates = await vmsWhere(ctx, vms, (cfg) => stepApplies("uefi", cfg));
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
  const candidates = await vmsWhere(ctx, vms, (cfg) => stepApplies("tpm", cfg));
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

export const ACTIONS: Record<Exclude<MenuAction, "exit">, Action> = {
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
