/** The guest's hostname: the VM name, or one derived from the machine-id. */
import { GlintError, UsageError } from "../errors.js";
import { MACHINE_ID_RE } from "../identity/formats.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { HOSTNAME_SOURCES, type HostnameFrom } from "../vm/config.js";
import { assertVmName } from "../vm/layout.js";

export type { HostnameFrom };

export interface GuestOptions {
  /** Where the guest's hostname comes from: the VM name (default) or the machine-id. */
  readonly hostnameFrom?: HostnameFrom;
}

/** Throws a UsageError unless `value` is a valid hostname source. */
export function checkHostnameFrom(value: unknown): HostnameFrom {
  if (value === undefined) return "name";
  if ((HOSTNAME_SOURCES as readonly unknown[]).includes(value)) return value as HostnameFrom;
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
