/**
 * `glint create`: provision a new VM (config, disks, NVRAM, TPM), then give
 * it a fresh identity through the transaction engine.
 *
 * A create that Glint starts writes `<vm>/.creating` first and removes it
 * when the identity is in place (the engine removes it too when it finishes
 * an interrupted create). Only a VM directory that still has that marker, no
 * identity, no journal and nothing in history/ is ever wiped: everything in
 * it was made by that same unfinished create.
 */
import { existsSync, promises as fs } from "node:fs";
import { glintError } from "../errors.js";
import { POLICIES } from "../identity/policies.js";
import type { Engine, OperationOptions, OperationResult } from "../txn/engine.js";
import { writeFileAtomic } from "../vm/atomic.js";
import type { VmPaths } from "../vm/layout.js";
import {
  type DiskAndFirmwareOptions,
  hasProvisioningOptions,
  planVm,
  provisionVm,
} from "./provision.js";
import { applyTemplate } from "./template.js";

export interface CreateVmOptions extends OperationOptions, DiskAndFirmwareOptions {}

/** Whether `dir` holds anything at all. */
async function nonEmpty(dir: string): Promise<boolean> {
  return (await fs.readdir(dir).catch(() => [] as string[])).length > 0;
}

/** Whether the VM directory is the leftover of an unfinished create, and nothing more. */
async function isUnfinishedCreate(paths: VmPaths): Promise<boolean> {
  return (
    existsSync(paths.creating) &&
    !existsSync(paths.identifiers) &&
    !existsSync(paths.journal) &&
    !(await nonEmpty(paths.history))
  );
}

function alreadyExists(paths: VmPaths) {
  return glintError("conflict", `VM "${paths.name}" already exists`, {
    vm: paths.name,
    reason: "exists",
  });
}

/**
 * Create VM `paths.name` (the caller holds its lock; `recovered` is the
 * interrupted operation the engine just finished, if any).
 */
export async function createVm(
  engine: Engine,
  paths: VmPaths,
  options: CreateVmOptions,
  env: NodeJS.ProcessEnv,
  recovered: OperationResult | undefined,
): Promise<OperationResult> {
  // This very create had been interrupted; finishing its journal completed it.
  if (recovered?.policy === "fresh" && !options.forceRegenerate) return recovered;
  if (existsSync(paths.identifiers)) {
    await fs.rm(paths.creating, { force: true });
    if (hasProvisioningOptions(options)) throw alreadyExists(paths);
    return engine.runPolicy(paths, POLICIES.fresh, options);
  }
  if (await isUnfinishedCreate(paths)) {
    options.onProgress?.("removing an unfinished earlier create");
    await fs.rm(paths.dir, { recursive: true, force: true });
  } else if (existsSync(paths.creating)) {
    // The marker of a create that got further than provisioning: keep everything.
    await fs.rm(paths.creating, { force: true });
  }
  if (await nonEmpty(paths.dir)) {
    // A VM directory without identifiers.json (e.g. it was deleted): keep
    // its disks and firmware, and give it a fresh identity.
    if (hasProvisioningOptions(options)) throw alreadyExists(paths);
    return engine.runPolicy(paths, POLICIES.fresh, options);
  }
  const plan = await planVm(await applyTemplate(paths.home, paths.name, options), env);
  await fs.mkdir(paths.dir, { recursive: true });
  await writeFileAtomic(paths.creating, `${process.pid}\n`);
  try {
    await provisionVm(paths, plan, env, options.onProgress);
    return await engine.runPolicy(paths, POLICIES.fresh, options);
  } catch (error) {
    // Nothing of this VM existed before this create: remove what it made,
    // unless the engine left a journal to finish it.
    if (!existsSync(paths.journal) && !existsSync(paths.identifiers)) {
      await fs.rm(paths.dir, { recursive: true, force: true });
    }
    throw error;
  }
}

/**
 * A new VM with an adopted identity (`glint libvirt import`): `setup` writes
 * its config and files, then the engine gives it its identity (`options.preset`
 * where free). Refused if the VM exists; on failure nothing of it is left.
 */
export async function adoptVm(
  engine: Engine,
  paths: VmPaths,
  setup: (paths: VmPaths) => Promise<void>,
  options: OperationOptions,
): Promise<OperationResult> {
  if (existsSync(paths.identifiers) || (await nonEmpty(paths.dir))) throw alreadyExists(paths);
  await fs.mkdir(paths.dir, { recursive: true });
  await writeFileAtomic(paths.creating, `${process.pid}\n`);
  try {
    await setup(paths);
    return await engine.runPolicy(paths, POLICIES.fresh, options);
  } catch (error) {
    if (!existsSync(paths.journal) && !existsSync(paths.identifiers)) {
      await fs.rm(paths.dir, { recursive: true, force: true });
    }
    throw error;
  }
}
