/**
 * The guest's post-install script, `<vm>/shared/set_identifiers.sh`, rendered
 * from templates/set_identifiers.sh.tmpl. The VM sees it on the 9p share (and
 * cloud-init guests get it through the NoCloud seed, see cloudinit.ts).
 */
import { promises as fs } from "node:fs";
import { GlintError, UsageError } from "../errors.js";
import { MAC_RE, MACHINE_ID_RE, UUID_V4_RE, VM_NAME_RE } from "../identity/formats.js";
import { parseIdentifiers, type SystemIdentifiers } from "../identity/model.js";
import { renameIntoPlace, writeTemp } from "../vm/atomic.js";
import { assertVmName, type VmPaths } from "../vm/layout.js";
import { loadTemplate, type PlaceholderSpec, renderTemplate, SHELL_SAFE_RE } from "./render.js";

export type HostnameFrom = "name" | "machine-id";

export const HOSTNAME_FROM_VALUES: readonly HostnameFrom[] = ["name", "machine-id"];

export interface GuestOptions {
  /** Where the guest's hostname comes from: the VM name (default) or the machine-id. */
  readonly hostnameFrom?: HostnameFrom;
}

export const SCRIPT_TEMPLATE = "set_identifiers.sh.tmpl";

/** Mode of the rendered script. */
export const SCRIPT_MODE = 0o755;

/** What each placeholder of the script template may hold. */
export const SCRIPT_SPEC: PlaceholderSpec = {
  VM_NAME: VM_NAME_RE,
  MACHINE_ID: MACHINE_ID_RE,
  MAC_ADDRESS: MAC_RE,
  VM_UUID: UUID_V4_RE,
  GENERATION: /^[1-9][0-9]{0,9}$/,
  VM_GENERATION_ID: UUID_V4_RE,
  FILESYSTEM_UUID: UUID_V4_RE,
  BOOT_UUID: UUID_V4_RE,
  SWAP_UUID: UUID_V4_RE,
  PARTITION_UUID: UUID_V4_RE,
  DISK_UUID: UUID_V4_RE,
  HOSTNAME_FROM: /^(name|machine-id)$/,
};

/** Throws a UsageError unless `value` is a valid hostname source. */
export function checkHostnameFrom(value: unknown): HostnameFrom {
  if (value === undefined) return "name";
  if (value === "name" || value === "machine-id") return value;
  throw new UsageError(
    `invalid hostname source ${JSON.stringify(value)}: use "name" or "machine-id"`,
  );
}

/** The guest hostname: the VM name, or `glint-<first 8 hex digits of the machine-id>`. */
export function hostnameFor(
  vmName: string,
  ids: SystemIdentifiers,
  hostnameFrom: HostnameFrom = "name",
): string {
  assertVmName(vmName);
  const from = checkHostnameFrom(hostnameFrom);
  if (from === "name") return vmName;
  if (typeof ids?.machine_id !== "string" || !MACHINE_ID_RE.test(ids.machine_id)) {
    throw new GlintError("identifiers: machine_id is not a valid machine-id");
  }
  return `glint-${ids.machine_id.slice(0, 8)}`;
}

/** The placeholder values for `ids` (already validated). */
function scriptValues(
  vmName: string,
  ids: SystemIdentifiers,
  hostnameFrom: HostnameFrom,
): Record<string, string> {
  const values: Record<string, string> = {
    VM_NAME: vmName,
    MACHINE_ID: ids.machine_id,
    MAC_ADDRESS: ids.mac_address,
    VM_UUID: ids.vm_uuid,
    GENERATION: String(ids.generation),
    VM_GENERATION_ID: ids.vm_generation_id,
    FILESYSTEM_UUID: ids.filesystem_uuid,
    BOOT_UUID: ids.boot_uuid,
    SWAP_UUID: ids.swap_uuid,
    PARTITION_UUID: ids.partition_uuid,
    DISK_UUID: ids.disk_uuid,
    HOSTNAME_FROM: hostnameFrom,
  };
  // Belt and braces: whatever the per-key formats say, nothing but
  // [A-Za-z0-9:._-] reaches the script.
  for (const [key, value] of Object.entries(values)) {
    if (!SHELL_SAFE_RE.test(value)) {
      throw new GlintError(`${key} has characters that must not reach a shell script`);
    }
  }
  return values;
}

/**
 * Render the post-install script for `vmName` with identity `ids`. Validates
 * the VM name and re-validates every identifier before rendering.
 */
export function renderPostInstallScript(
  vmName: string,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): string {
  assertVmName(vmName);
  const hostnameFrom = checkHostnameFrom(options.hostnameFrom);
  const valid = parseIdentifiers(ids as unknown, `identifiers of ${vmName}`);
  return renderValidatedScript(vmName, valid, hostnameFrom);
}

/**
 * {@link renderPostInstallScript} for callers that have already checked the
 * VM name and hostname source and parsed `valid` with parseIdentifiers.
 */
export function renderValidatedScript(
  vmName: string,
  valid: SystemIdentifiers,
  hostnameFrom: HostnameFrom,
): string {
  return renderTemplate(
    loadTemplate(SCRIPT_TEMPLATE),
    SCRIPT_SPEC,
    scriptValues(vmName, valid, hostnameFrom),
    SCRIPT_TEMPLATE,
  );
}

/**
 * Render the script into a fsynced temp file next to `paths.script` (mode
 * 0755, creating `shared/`). Returns the temp path; rename it into place.
 */
export async function writeScriptTemp(
  paths: VmPaths,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): Promise<string> {
  return writeRenderedScriptTemp(paths, renderPostInstallScript(paths.name, ids, options));
}

/**
 * Write an already rendered `script` (from {@link renderPostInstallScript})
 * into a fsynced temp file next to `paths.script` (mode 0755, creating
 * `shared/`). Returns the temp path; rename it into place.
 */
export async function writeRenderedScriptTemp(paths: VmPaths, script: string): Promise<string> {
  await fs.mkdir(paths.shared, { recursive: true });
  return writeTemp(paths.script, script, SCRIPT_MODE);
}

/** Write `<vm>/shared/set_identifiers.sh` atomically, mode 0755. Returns its path. */
export async function createPostInstallScript(
  paths: VmPaths,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): Promise<string> {
  const tmp = await writeScriptTemp(paths, ids, options);
  await renameIntoPlace(tmp, paths.script);
  return paths.script;
}
