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
import { createOverlay, relativeBackingPath, runTool } from "./qemu/index.js";
import { tempPathFor } from "./vm/atomic.js";
import { storePaths } from "./vm/layout.js";
import { archiveByRename, archiveFile } from "./vm/store.js";

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
  const tmp = tempPathFor(ctx.paths.overlay);
  await createOverlay(ctx.paths.base, tmp, { env: ctx.env });
  return {
    async commit() {
      if (existsSync(ctx.paths.overlay)) {
        if (ctx.options.discardOverlay) await fs.rm(ctx.paths.overlay, { force: true });
        else {
          const kept = await archiveByRename(ctx.paths, ctx.paths.overlay, ctx.policy.name);
          // Keep the archived overlay usable: its backing path is relative to history/ now.
          if (kept) {
            await runTool(
              "qemu-img",
              [
                "rebase",
                "-u",
                "-f",
                "qcow2",
                "-b",
                relativeBackingPath(ctx.paths.base, kept),
                "-F",
                "qcow2",
                kept,
              ],
              { env: ctx.env },
            );
          }
        }
      }
      await fs.rename(tmp, ctx.paths.overlay);
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

/** The real implementations of every reset step. */
export const DEFAULT_STEPS: StepPreparers = {
  uefi,
  tpm,
  overlay,
  "guest-files": guestFiles,
};
