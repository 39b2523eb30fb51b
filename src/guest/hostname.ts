/** The guest's hostname: the VM name, or one derived from the machine-id. */
import { GlintError, UsageError } from "../errors.js";
import { MACHINE_ID_RE } from "../identity/formats.js";
import type { SystemIdentifiers } from "../identity/model.js";
import {
  type CloudProfile,
  HOSTNAME_SOURCES,
  type HostnameFrom,
  hostnameFromPattern,
  type VmConfig,
} from "../vm/config.js";
import { assertVmName } from "../vm/layout.js";

export type { HostnameFrom };

export interface GuestOptions {
  /** Where the guest's hostname comes from: the VM name (default) or the machine-id. */
  readonly hostnameFrom?: HostnameFrom;
  /** A hostname pattern such as `web-{n}` (with hostnameFrom "name"); see {@link hostnameFromPattern}. */
  readonly hostnamePattern?: string | null;
  /** Which seed the guest gets: NoCloud (default) or an OpenStack config drive. */
  readonly cloud?: CloudProfile;
}

/** The guest options a VM's config chooses. */
export function guestOptionsOf(config: VmConfig): GuestOptions {
  return {
    hostnameFrom: config.hostname_from,
    hostnamePattern: config.hostname_pattern,
    cloud: config.cloud,
  };
}

export { hostnameFromPattern };

/** Throws a UsageError unless `value` is a valid hostname source. */
export function checkHostnameFrom(value: unknown): HostnameFrom {
  if (value === undefined) return "name";
  if ((HOSTNAME_SOURCES as readonly unknown[]).includes(value)) return value as HostnameFrom;
  throw new UsageError(
    `invalid hostname source ${JSON.stringify(value)}: use "name" or "machine-id"`,
  );
}

/**
 * The guest hostname: the VM name (or what `pattern` makes of it), or
 * `glint-<first 8 hex digits of the machine-id>`.
 */
export function hostnameFor(
  vmName: string,
  ids: SystemIdentifiers,
  hostnameFrom: HostnameFrom = "name",
  pattern: string | null = null,
): string {
  assertVmName(vmName);
  const from = checkHostnameFrom(hostnameFrom);
  if (from === "name") return pattern === null ? vmName : hostnameFromPattern(pattern, vmName);
  if (typeof ids?.machine_id !== "string" || !MACHINE_ID_RE.test(ids.machine_id)) {
    throw new GlintError("identifiers: machine_id is not a valid machine-id");
  }
  return `glint-${ids.machine_id.slice(0, 8)}`;
}
