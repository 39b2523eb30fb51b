/**
 * `glint verify`: check VMs against their identifiers.json. A running VM is
 * asked through QMP and the QEMU guest agent (see running.ts); a stopped VM's
 * disk is read offline (see offline.ts). `verifyVms` also lists the values
 * that two VMs share inside their guests.
 */
import { hostnameFor } from "../guest/hostname.js";
import type { SystemIdentifiers } from "../identity/model.js";
import type { VmConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { runningQemuPid } from "../vm/running.js";
import { type SharedValue, sharedValues, type VmVerification, verification } from "./checks.js";
import { verifyStopped } from "./offline.js";
import { type LiveOptions, verifyRunning } from "./running.js";

export * from "./checks.js";
export { QgaClient } from "./qga.js";
export { QmpClient } from "./qmp.js";

export interface VerifyTarget {
  paths: VmPaths;
  ids: SystemIdentifiers;
  config: VmConfig;
}

export interface VerifyOptions extends LiveOptions {
  env?: NodeJS.ProcessEnv;
}

/** Verify one VM: live when its QEMU runs, else from its disk. */
export async function verifyVm(
  target: VerifyTarget,
  options: VerifyOptions = {},
): Promise<VmVerification> {
  const { paths, ids, config } = target;
  const hostname = hostnameFor(paths.name, ids, config.hostname_from, config.hostname_pattern);
  if ((await runningQemuPid(paths)) !== undefined) {
    const r = await verifyRunning(paths, ids, hostname, options);
    return verification(paths.name, "running", r.checks, r.values);
  }
  const r = await verifyStopped(paths, ids, config, hostname, options.env);
  return verification(paths.name, "stopped", r.checks, r.values);
}

export interface FleetVerification {
  readonly results: readonly VmVerification[];
  /** Values that two or more VMs share inside their guests. */
  readonly shared: readonly SharedValue[];
  readonly ok: boolean;
}

/** Verify several VMs one after another, then look for values they share. */
export async function verifyVms(
  targets: readonly VerifyTarget[],
  options: VerifyOptions = {},
): Promise<FleetVerification> {
  const results: VmVerification[] = [];
  for (const t of targets) results.push(await verifyVm(t, options));
  const shared = sharedValues(results);
  return { results, shared, ok: shared.length === 0 && results.every((r) => r.ok) };
}
