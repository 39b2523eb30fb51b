/**
 * The guest's post-install script, `<vm>/shared/set_identifiers.sh`: a
 * static POSIX sh file (assets/guest/set_identifiers.sh), the same bytes for
 * every VM, plus `<vm>/shared/identity.env` beside it with this VM's values
 * (see identity-env.ts). The VM sees both on the 9p share; cloud-init guests
 * get both through the NoCloud seed (see cloudinit.ts).
 */
import { promises as fs, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GlintError } from "../errors.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { renameIntoPlace, writeTemp } from "../vm/atomic.js";
import type { VmPaths } from "../vm/layout.js";
import type { GuestOptions } from "./hostname.js";
import { IDENTITY_ENV_MODE, renderIdentityEnv } from "./identity-env.js";

/** The static script in the package. */
export const SCRIPT_FILE = fileURLToPath(
  new URL("../../assets/guest/set_identifiers.sh", import.meta.url),
);

/** Mode of the script. */
export const SCRIPT_MODE = 0o755;

let cached: string | undefined;

/** The text of the static script (read once). */
export function loadScript(): string {
  if (cached === undefined) {
    try {
      cached = readFileSync(SCRIPT_FILE, "utf8");
    } catch (error) {
      throw new GlintError(`cannot read the guest script ${SCRIPT_FILE}`, { cause: error });
    }
  }
  return cached;
}

/**
 * The post-install script. It is the same for every VM (its values are in
 * identity.env); `vmName`, `ids` and `options` are validated as for
 * {@link renderIdentityEnv}, so a VM whose identity.env cannot be written
 * gets no script either.
 */
export function renderPostInstallScript(
  vmName: string,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): string {
  renderIdentityEnv(vmName, ids, options);
  return loadScript();
}

/** The guest files of the 9p share, as text. */
export interface ShareFiles {
  readonly script: string;
  readonly identityEnv: string;
}

/**
 * Write `files` into fsynced temp files next to `paths.script` and
 * `paths.identityEnv` (creating `shared/`). Returns the temp paths, to rename
 * into place; on failure nothing is left behind.
 */
export async function writeShareTemps(
  paths: VmPaths,
  files: ShareFiles,
): Promise<{ script: string; identityEnv: string }> {
  await fs.mkdir(paths.shared, { recursive: true });
  const script = await writeTemp(paths.script, files.script, SCRIPT_MODE);
  try {
    const identityEnv = await writeTemp(paths.identityEnv, files.identityEnv, IDENTITY_ENV_MODE);
    return { script, identityEnv };
  } catch (error) {
    await fs.rm(script, { force: true });
    throw error;
  }
}

/**
 * Write `<vm>/shared/set_identifiers.sh` (mode 0755) and
 * `<vm>/shared/identity.env` (mode 0644), each atomically, identity.env
 * first. Returns the script's path.
 */
export async function createPostInstallScript(
  paths: VmPaths,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): Promise<string> {
  const identityEnv = renderIdentityEnv(paths.name, ids, options);
  const tmp = await writeShareTemps(paths, { script: loadScript(), identityEnv });
  try {
    await renameIntoPlace(tmp.identityEnv, paths.identityEnv);
  } catch (error) {
    await fs.rm(tmp.script, { force: true });
    throw error;
  }
  await renameIntoPlace(tmp.script, paths.script);
  return paths.script;
}
