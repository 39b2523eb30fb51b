/**
 * The `disk-identity` reset step: the VM's disk and OS identifiers (GPT and
 * partition GUIDs, filesystem UUIDs, machine-id, hostname, SSH host keys,
 * leases, cloud-init state, random seed) written offline into the VM's own
 * disk by src/sysprep, before its next boot.
 *
 * Which disk: the overlay when the VM has one (a fresh overlay made by the
 * same operation is identified by the overlay step itself), else the VM's
 * own copy of its base. A base linked with `--link-base` is never written.
 * The work happens on a temp copy that the commit renames into place, so a
 * failure or a kill leaves the disk as it was. A disk with nothing Glint
 * recognises (blank, unknown layout) is skipped, and the operation goes on.
 */
import { constants, promises as fs } from "node:fs";
import { formatAppliedRecord, hostnameFor, identityEnvValues } from "../guest/index.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { type SysprepInput, sysprepImage } from "../sysprep/index.js";
import { type PreparedChange, preparedChange } from "../txn/change.js";
import type { ResetStepImpl, StepContext } from "../txn/steps.js";
import { fsyncFile, renameIntoPlace, tempPathFor } from "../vm/atomic.js";
import type { VmConfig } from "../vm/config.js";
import { writeConfig } from "../vm/store.js";

/** Which of the VM's own disks sysprep may write, or undefined (none, or a shared base). */
function ownDisk(config: VmConfig): "overlay" | "base" | undefined {
  if (config.overlay) return "overlay";
  if (config.base?.linked) return undefined;
  if (config.base !== null || config.disk_size !== null) return "base";
  return undefined;
}

/**
 * What sysprep writes for VM `vm`: its identifiers, its hostname, and the
 * guest script's `/etc/glint/applied` record, so the first boot finds the
 * identity applied and keeps that boot's fresh state.
 */
export function sysprepInputFor(
  vm: string,
  ids: SystemIdentifiers,
  config: Pick<VmConfig, "hostname_from">,
  previousMap?: Readonly<Record<string, string>>,
): SysprepInput {
  const hostnameFrom = config.hostname_from;
  return {
    vmName: vm,
    identifiers: ids,
    hostname: hostnameFor(vm, ids, hostnameFrom),
    appliedRecord: formatAppliedRecord(identityEnvValues(vm, ids, { hostnameFrom })),
    ...(previousMap ? { previousMap } : {}),
  };
}

/**
 * Apply the identity to `image` (a temp file the caller owns). Resolves to
 * the fresh partition values to keep in config.json, or undefined when the
 * disk was skipped.
 */
export async function identifyDisk(
  ctx: StepContext,
  image: string,
): Promise<Record<string, string> | undefined> {
  ctx.onProgress("writing the identity into the disk (sysprep)");
  const report = await sysprepImage(
    image,
    sysprepInputFor(ctx.paths.name, ctx.identifiers, ctx.config, ctx.config.sysprep_values),
    { env: ctx.env },
  );
  if (report.status === "skipped") {
    ctx.onProgress(`sysprep skipped: ${report.skipped[0]?.reason ?? "nothing recognised"}`);
    return undefined;
  }
  return { ...report.freshValues };
}

/** Keep sysprep's fresh partition values in config.json for the next run. */
export async function keepSysprepValues(
  ctx: StepContext,
  values: Record<string, string> | undefined,
): Promise<void> {
  if (values === undefined || Object.keys(values).length === 0) return;
  const config: VmConfig = { ...ctx.config, sysprep_values: values };
  await writeConfig(ctx.paths, config);
}

const NOTHING: PreparedChange = { commit: async () => {}, abort: async () => {} };

export const diskIdentity: ResetStepImpl = {
  appliesTo: (config) => config.sysprep && ownDisk(config) !== undefined,
  describe: () => "the disk and OS identifiers inside its disk",
  async prepare(ctx): Promise<PreparedChange> {
    const kind = ownDisk(ctx.config);
    // A fresh overlay made by this same operation is identified by the overlay step.
    const leftToOverlay = kind === "overlay" && ctx.steps.includes("overlay");
    if (kind === undefined || leftToOverlay) return NOTHING;
    const disk = kind === "overlay" ? ctx.paths.overlay : ctx.paths.base;
    const tmp = tempPathFor(disk);
    try {
      await fs.copyFile(disk, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      const values = await identifyDisk(ctx, tmp);
      if (values === undefined) {
        await fs.rm(tmp, { force: true });
        return NOTHING;
      }
      await fsyncFile(tmp);
      return preparedChange({
        what: "disk identity",
        async commit() {
          await renameIntoPlace(tmp, disk);
          await keepSysprepValues(ctx, values);
        },
        abort: () => fs.rm(tmp, { force: true }),
      });
    } catch (error) {
      await fs.rm(tmp, { force: true });
      throw error;
    }
  },
};
