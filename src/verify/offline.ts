/**
 * Verify a stopped VM from its disk (the overlay, else base.qcow2), read
 * offline and read-only.
 */
import { existsSync } from "node:fs";
import type { SystemIdentifiers } from "../identity/model.js";
import type { VmConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { type Check, type GuestValues, unavailable } from "./checks.js";

/** The rows of a stopped VM. */
export async function verifyStopped(
  paths: VmPaths,
  ids: SystemIdentifiers,
  config: VmConfig,
  hostname: string,
  _env?: NodeJS.ProcessEnv,
): Promise<{ checks: Check[]; values: GuestValues }> {
  const disk = config.overlay ? paths.overlay : paths.base;
  const why = existsSync(disk)
    ? "the VM is not running, and reading its disk offline is not available yet"
    : `the VM is not running and has no disk (${disk})`;
  return {
    checks: [
      unavailable("hostname", hostname, "image", why),
      unavailable("machine-id", ids.machine_id, "image", why),
    ],
    values: {},
  };
}
