/**
 * The reset steps of the regeneration policies (see POLICIES), wired to the
 * firmware, QEMU and guest modules. Each step prepares its new state in temp
 * files and returns a commit/abort pair; the manager commits all of them only
 * when every step prepared cleanly.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { prepareTpmReset, prepareUefiReset, TPM2_PERMALL } from "./firmware/index.js";
import { prepareGuestFiles } from "./guest/index.js";
import type { PreparedStep, StepContext, StepPreparers } from "./manager.js";
import { createOverlay, imageInfo, relativeBackingPath, runTool } from "./qemu/index.js";
import { renameIntoPlace, tempPathFor } from "./vm/atomic.js";
import { storePaths } from "./vm/layout.js";
import { archiveByLink, archiveFile } from "./vm/store.js";

/** The per-home local CA that signs every VM's EK certificate. */
export function tpmCaDir(home: string): string {
  return path.join(storePaths(home).dir, "tpm-ca");
}

/** Copy the state about to be replaced into history/ before committing. */
export function backUpFirst(prepared: PreparedStep, backup: () => Promise<unknown>): PreparedStep {
  return {
    async commit() {
      await backup();
      await prepared.commit();
    },
    abort: () => prepared.abort(),
  };
}

const uefi = async (ctx: StepContext): Promise<PreparedStep | undefined> => {
  if (ctx.config.firmware === "bios") return undefined;
  ctx.options.onProgress?.("resetting UEFI variables");
  const prepared = await prepareUefiReset(ctx.paths.uefiSeed, ctx.paths.uefiInstance);
  return backUpFirst(prepared, () =>
    archiveFile(ctx.paths, ctx.paths.uefiInstance, ctx.policy.name),
  );
};

const tpm = async (ctx: StepContext): Promise<PreparedStep | undefined> => {
  if (!ctx.config.tpm) return undefined;
  ctx.options.onProgress?.("manufacturing a new TPM (new EK)");
  const prepared = await prepareTpmReset(ctx.paths.tpm, {
    vmName: ctx.paths.name,
    caDir: tpmCaDir(path.dirname(ctx.paths.dir)),
    env: ctx.env,
  });
  return backUpFirst(prepared, () =>
    archiveFile(ctx.paths, path.join(ctx.paths.tpm, TPM2_PERMALL), ctx.policy.name),
  );
};

const overlay = async (ctx: StepContext): Promise<PreparedStep | undefined> => {
  if (!ctx.config.overlay) return undefined;
  ctx.options.onProgress?.("creating a fresh overlay");
  await repairArchivedOverlays(ctx);
  const tmp = tempPathFor(ctx.paths.overlay);
  await createOverlay(ctx.paths.base, tmp, { env: ctx.env });
  return {
    async commit() {
      // The old overlay stays reachable from history/ (a hard link, no copy)
      // and the new one replaces it in one rename: at no moment is there no
      // overlay.qcow2.
      const kept =
        ctx.options.discardOverlay || !existsSync(ctx.paths.overlay)
          ? undefined
          : await archiveByLink(ctx.paths, ctx.paths.overlay, ctx.policy.name);
      await renameIntoPlace(tmp, ctx.paths.overlay);
      // Keep the archived overlay usable: its backing path must be relative to history/.
      if (kept) await rebaseOntoBase(ctx, kept);
    },
    async abort() {
      await fs.rm(tmp, { force: true });
    },
  };
};

const guestFiles = async (ctx: StepContext): Promise<PreparedStep | undefined> => {
  ctx.options.onProgress?.("writing the post-install script and seed.iso");
  return prepareGuestFiles(ctx.paths, ctx.paths.name, ctx.identifiers, {
    hostnameFrom: ctx.config.hostname_from,
  });
};

/**
 * An overlay archived in history/ by a run that was killed before it could
 * rebase it still names its base relative to the VM directory; point it at
 * the base again so that the kept guest data stays readable.
 */
async function repairArchivedOverlays(ctx: StepContext): Promise<void> {
  const names = await fs.readdir(ctx.paths.history).catch(() => [] as string[]);
  for (const name of names.filter((n) => /_overlay-[0-9a-f]{6}\.qcow2$/.test(n))) {
    const file = path.join(ctx.paths.history, name);
    const info = await imageInfo(file, { env: ctx.env }).catch(() => undefined);
    const backing = info?.backingFilename;
    if (!backing || existsSync(path.resolve(ctx.paths.history, backing))) continue;
    await rebaseOntoBase(ctx, file);
  }
}

/** Point overlay `file`'s backing path at the VM's base.qcow2 (relative), without copying data. */
async function rebaseOntoBase(ctx: StepContext, file: string): Promise<void> {
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
export const DEFAULT_STEPS: StepPreparers = {
  uefi,
  tpm,
  overlay,
  "guest-files": guestFiles,
};
