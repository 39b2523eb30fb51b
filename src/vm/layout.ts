/**
 * Where everything of a VM lives. The layout is the seed prototype's, plus
 * `history/`, `tpm/` and `seed.iso`:
 *
 *     <home>/<vm>/identifiers.json
 *     <home>/<vm>/config.json
 *     <home>/<vm>/base.qcow2
 *     <home>/<vm>/overlay.qcow2
 *     <home>/<vm>/uefi-seed.fd
 *     <home>/<vm>/uefi-instance.fd
 *     <home>/<vm>/shared/set_identifiers.sh
 *     <home>/<vm>/history/
 *     <home>/<vm>/tpm/
 *     <home>/<vm>/seed.iso
 *
 * Locks live in `<home>/.glint/` (VM locks in `.glint/vms/`, so that no VM
 * name can collide with the store lock), outside the VM directories.
 */
import path from "node:path";
import { UsageError } from "../errors.js";
import { VM_NAME_RE } from "../identity/formats.js";

export const DEFAULT_HOME = "./vms_linux";

/**
 * `--home`, else `$GLINT_HOME`, else `./vms_linux`, as an absolute path. An
 * empty value is a UsageError: it would silently mean the current directory.
 */
export function resolveHome(home?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (home === "") {
    throw new UsageError("--home is empty: give the VM home directory, e.g. --home ./vms_linux");
  }
  if (home === undefined && env.GLINT_HOME === "") {
    throw new UsageError(
      "GLINT_HOME is set but empty: set it to the VM home directory, or unset it to use ./vms_linux",
    );
  }
  return path.resolve(home ?? env.GLINT_HOME ?? DEFAULT_HOME);
}

/** Throws a UsageError unless `name` is a valid VM name (a valid hostname label). */
export function assertVmName(name: string): void {
  if (!VM_NAME_RE.test(name)) {
    const shown = name.length > 40 ? `${name.slice(0, 40)}… (${name.length} characters)` : name;
    throw new UsageError(
      `invalid VM name ${JSON.stringify(shown)}: use 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes the hostname)`,
    );
  }
}

export interface VmPaths {
  readonly name: string;
  readonly dir: string;
  readonly identifiers: string;
  readonly config: string;
  readonly base: string;
  readonly overlay: string;
  readonly uefiSeed: string;
  readonly uefiInstance: string;
  readonly shared: string;
  readonly script: string;
  readonly history: string;
  readonly tpm: string;
  readonly seedIso: string;
  readonly lock: string;
}

/** Paths of VM `name` under `home`. Validates the name first. */
export function vmPaths(home: string, name: string): VmPaths {
  assertVmName(name);
  const dir = path.join(home, name);
  return {
    name,
    dir,
    identifiers: path.join(dir, "identifiers.json"),
    config: path.join(dir, "config.json"),
    base: path.join(dir, "base.qcow2"),
    overlay: path.join(dir, "overlay.qcow2"),
    uefiSeed: path.join(dir, "uefi-seed.fd"),
    uefiInstance: path.join(dir, "uefi-instance.fd"),
    shared: path.join(dir, "shared"),
    script: path.join(dir, "shared", "set_identifiers.sh"),
    history: path.join(dir, "history"),
    tpm: path.join(dir, "tpm"),
    seedIso: path.join(dir, "seed.iso"),
    lock: path.join(home, ".glint", "vms", `${name}.lock`),
  };
}

/** Store-wide files. */
export function storePaths(home: string): { dir: string; lock: string; generation: string } {
  const dir = path.join(home, ".glint");
  return { dir, lock: path.join(dir, "store.lock"), generation: path.join(dir, "generation") };
}
