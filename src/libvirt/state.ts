/**
 * The files a libvirt domain shares with its Glint VM: the TPM state, copied
 * to or from where a privileged libvirt keeps it (`<swtpm dir>/<uuid>/tpm2/`,
 * see {@link LIBVIRT_SWTPM_DIR}), and the NVRAM.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { copyFileAtomic } from "../vm/atomic.js";
import { LIBVIRT_SWTPM_DIR, libvirtTpmStateDir, TPM2_PERMALL } from "../vm/layout.js";

/** `--swtpm-dir`, else `$GLINT_LIBVIRT_SWTPM_DIR`, else /var/lib/libvirt/swtpm. */
export function swtpmDir(option: string | undefined, env: NodeJS.ProcessEnv): string {
  const dir = option ?? env.GLINT_LIBVIRT_SWTPM_DIR;
  return path.resolve(dir === undefined || dir === "" ? LIBVIRT_SWTPM_DIR : dir);
}

/** Copy Glint's TPM state (`tpm/`) to libvirt's place for domain `uuid`, replacing what is there. */
export async function placeTpmState(tpmDir: string, root: string, uuid: string): Promise<string> {
  const target = libvirtTpmStateDir(root, uuid);
  await fs.mkdir(target, { recursive: true, mode: 0o700 });
  // Volatile and suspend state of an earlier run must not outlive the permanent state.
  for (const name of await fs.readdir(target)) {
    if (name !== TPM2_PERMALL && name.startsWith("tpm2-")) await fs.rm(path.join(target, name));
  }
  await copyFileAtomic(path.join(tpmDir, TPM2_PERMALL), path.join(target, TPM2_PERMALL));
  return target;
}

/** libvirt's TPM state file of domain `uuid`, if it has one. */
export function libvirtTpmState(root: string, uuid: string): string | undefined {
  const file = path.join(libvirtTpmStateDir(root, uuid), TPM2_PERMALL);
  return existsSync(file) ? file : undefined;
}

/** Remove libvirt's TPM state of domain `uuid` (after the domain moved to another UUID). */
export async function removeTpmState(root: string, uuid: string): Promise<void> {
  await fs.rm(path.dirname(libvirtTpmStateDir(root, uuid)), { recursive: true, force: true });
}
