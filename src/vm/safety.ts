/**
 * "Never follow a symlink we did not create": before any command uses a VM,
 * its directory, the directories in it and every file Glint or QEMU opens
 * there must not be symlinks. The one link Glint makes itself, base.qcow2 of
 * a `--link-base` VM, is allowed when it still points where config.json says.
 *
 * This check names the offending path up front; the reads themselves also
 * refuse links (O_NOFOLLOW, see fsutil.ts), and writes rename over their
 * target, which replaces a link instead of following it.
 */
import { promises as fs, type Stats } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { TPM2_PERMALL, type VmPaths } from "./layout.js";
import { readConfig } from "./store.js";
import { symlinkRefused, systemError } from "./syserror.js";

async function lstatOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw systemError(error, file, "reading");
  }
}

/** Files and directories of a VM that may never be symlinks. */
function neverLinks(paths: VmPaths): string[] {
  return [
    paths.shared,
    paths.history,
    paths.tpm,
    paths.identifiers,
    paths.config,
    paths.journal,
    paths.creating,
    paths.overlay,
    paths.uefiSeed,
    paths.uefiInstance,
    paths.seedIso,
    paths.configDrive,
    paths.script,
    paths.identityEnv,
    paths.pidfile,
    path.join(paths.tpm, TPM2_PERMALL),
  ];
}

/**
 * Throws a GlintError if the VM's directory, or anything in it that Glint
 * uses, is a symlink Glint did not create. A VM that does not exist passes.
 */
export async function assertNoForeignSymlinks(paths: VmPaths): Promise<void> {
  const dir = await lstatOrUndefined(paths.dir);
  if (dir === undefined) return;
  if (dir.isSymbolicLink()) throw symlinkRefused(paths.dir);
  if (!dir.isDirectory()) {
    throw new GlintError(
      `${paths.dir} is not a directory: move it out of the way to use the name "${paths.name}"`,
    );
  }
  const stats = await Promise.all(neverLinks(paths).map(lstatOrUndefined));
  const linked = neverLinks(paths).find((_, i) => stats[i]?.isSymbolicLink());
  if (linked !== undefined) throw symlinkRefused(linked);
  const base = await lstatOrUndefined(paths.base);
  if (base?.isSymbolicLink()) {
    // Glint's own --link-base link: it must still point at the recorded source.
    const config = await readConfig(paths);
    const target = await fs.readlink(paths.base);
    if (!config?.base?.linked || target !== config.base.source) throw symlinkRefused(paths.base);
  }
}
