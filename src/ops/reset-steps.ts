/**
 * The reset steps of the regeneration policies (see POLICIES) and of
 * `glint reset`, wired to the firmware, QEMU and guest modules. Each step
 * says whether it applies to a VM, and prepares its new state in temp files;
 * the transaction engine commits all of them only when every one prepared.
 * This is the one place that decides which steps apply to which VM.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { glintError } from "../errors.js";
import { prepareTpmReset, prepareUefiReset } from "../firmware/index.js";
import { guestOptionsOf, prepareGuestFiles } from "../guest/index.js";
import { runTool } from "../host/tools.js";
import type { ResetStep } from "../identity/policies.js";
import { createOverlay, imageInfo, relativeBackingPath } from "../qemu/index.js";
import { type PreparedChange, preparedChange } from "../txn/change.js";
import type { Engine } from "../txn/engine.js";
import type { ResetStepImpl, ResetSteps, StepContext } from "../txn/steps.js";
import { renameIntoPlace, tempPathFor } from "../vm/atomic.js";
import type { VmConfig } from "../vm/config.js";
import { HISTORY_OVERLAY_RE, storePaths, tpmStateFile, type VmPaths } from "../vm/layout.js";
import { archiveByLink, archiveFile, readConfigOrDefault } from "../vm/store.js";
import { diskIdentity, identifyDisk, keepSysprepValues } from "./disk-identity.js";

/** Copy the state about to be replaced into history/ before committing. */
function backUpFirst(
  what: string,
  prepared: PreparedChange,
  backup: () => Promise<unknown>,
): PreparedChange {
  return preparedChange({
    what,
    async commit() {
      await backup();
      await prepared.commit();
    },
    abort: () => prepared.abort(),
  });
}

const uefi: ResetStepImpl = {
  appliesTo: (config) => config.firmware !== "bios",
  describe: (config) =>
    `its UEFI variables${config.firmware === "uefi-secure" ? " and Secure Boot state" : ""}`,
  async prepare(ctx) {
    ctx.onProgress("resetting UEFI variables");
    const prepared = await prepareUefiReset(ctx.paths.uefiSeed, ctx.paths.uefiInstance);
    return backUpFirst("UEFI variable reset", prepared, () =>
      archiveFile(ctx.paths, ctx.paths.uefiInstance, ctx.label),
    );
  },
};

const tpm: ResetStepImpl = {
  appliesTo: (config) => config.tpm,
  describe: () => "its TPM (a new EK)",
  async prepare(ctx) {
    ctx.onProgress("manufacturing a new TPM (new EK)");
    const prepared = await prepareTpmReset(ctx.paths.tpm, {
      vmName: ctx.paths.name,
      caDir: storePaths(ctx.paths.home).tpmCa,
      env: ctx.env,
    });
    return backUpFirst("TPM reset", prepared, () =>
      archiveFile(ctx.paths, tpmStateFile(ctx.paths), ctx.label),
    );
  },
};

const overlay: ResetStepImpl = {
  appliesTo: (config) => config.overlay,
  describe: (_config, { discardOverlay }) =>
    `its overlay (the guest's writes${discardOverlay ? " are deleted" : " are kept in history/"})`,
  async prepare(ctx) {
    ctx.onProgress("creating a fresh overlay");
    await repairArchivedOverlays(ctx);
    const tmp = tempPathFor(ctx.paths.overlay);
    await createOverlay(ctx.paths.base, tmp, { env: ctx.env });
    let values: Record<string, string> | undefined;
    try {
      if (ctx.config.sysprep) values = await identifyDisk(ctx, tmp);
    } catch (error) {
      await fs.rm(tmp, { force: true });
      throw error;
    }
    return preparedChange({
      what: "overlay reset",
      async commit() {
        // The old overlay stays reachable from history/ (a hard link, no copy)
        // and the new one replaces it in one rename: at no moment is there no
        // overlay.qcow2.
        const kept =
          ctx.discardOverlay || !existsSync(ctx.paths.overlay)
            ? undefined
            : await archiveByLink(ctx.paths, ctx.paths.overlay, ctx.label);
        await renameIntoPlace(tmp, ctx.paths.overlay);
        // Keep the archived overlay usable: its backing path must be relative to history/.
        if (kept) await rebaseOntoBase(ctx, kept);
        await keepSysprepValues(ctx, values);
      },
      abort: () => fs.rm(tmp, { force: true }),
    });
  },
};

const guestFiles: ResetStepImpl = {
  appliesTo: () => true,
  describe: () => "its post-install script and seed.iso",
  async prepare(ctx) {
    ctx.onProgress("writing the post-install script and seed.iso");
    return prepareGuestFiles(ctx.paths, ctx.paths.name, ctx.identifiers, {
      ...guestOptionsOf(ctx.config),
      env: ctx.env,
    });
  },
};

/**
 * An overlay archived in history/ by a run that was killed before it could
 * rebase it still names its base relative to the VM directory; point it at
 * the base again so that the kept guest data stays readable.
 */
async function repairArchivedOverlays(ctx: StepContext): Promise<void> {
  const names = await fs.readdir(ctx.paths.history).catch(() => [] as string[]);
  for (const name of names.filter((n) => HISTORY_OVERLAY_RE.test(n))) {
    const file = path.join(ctx.paths.history, name);
    const info = await imageInfo(file, { env: ctx.env }).catch(() => undefined);
    const backing = info?.backingFilename;
    if (!backing || existsSync(path.resolve(ctx.paths.history, backing))) continue;
    await rebaseOntoBase(ctx, file);
  }
}

/** Point overlay `file`'s backing path at the VM's base.qcow2 (relative), without copying data. */
async function rebaseOntoBase(ctx: { paths: VmPaths; env: NodeJS.ProcessEnv }, file: string) {
  await runTool(
    "qemu-img",
    [
      "rebase",
      "-u",
      "-f",
      "qcow2",
      "-b",
      relativeBackingPath(ctx.paths.base, file),
      "-F",
      "qcow2",
      file,
    ],
    { env: ctx.env },
  );
}

/** The real implementations of every reset step. */
export const DEFAULT_STEPS: ResetSteps = {
  uefi,
  tpm,
  overlay,
  "disk-identity": diskIdentity,
  "guest-files": guestFiles,
};

/** What `steps` replace on a VM with `config`, for confirmation prompts. */
export function describeResets(
  steps: readonly ResetStep[],
  config: VmConfig,
  options: { discardOverlay: boolean },
): string[] {
  return steps
    .filter((s) => s !== "guest-files" && DEFAULT_STEPS[s]?.appliesTo(config))
    .map((s) => DEFAULT_STEPS[s]?.describe(config, options) ?? s);
}

/** Whether `step` does anything on a VM with `config` (e.g. no TPM → no TPM reset). */
export function stepApplies(step: ResetStep, config: VmConfig): boolean {
  return DEFAULT_STEPS[step]?.appliesTo(config) === true;
}

/** `glint reset uefi|tpm`: run one reset step alone (the caller holds the VM's lock). */
export async function resetOne(
  engine: Engine,
  paths: VmPaths,
  step: "uefi" | "tpm",
  options: { onProgress?: (message: string) => void },
): Promise<void> {
  const config = await readConfigOrDefault(paths);
  if (!stepApplies(step, config)) {
    throw glintError(
      "unsupported",
      step === "uefi"
        ? `VM "${paths.name}" uses BIOS firmware: it has no UEFI variables to reset`
        : `VM "${paths.name}" has no TPM`,
      { vm: paths.name, reason: step === "uefi" ? "no-uefi" : "no-tpm" },
    );
  }
  await engine.runSteps(paths, `reset-${step}`, [step], options);
}
