/**
 * The NoCloud seed ISO, `<vm>/seed.iso` (an ISO 9660 volume labelled
 * `cidata` holding `meta-data` and `user-data`), and the writers that put
 * every guest file of a VM in place: the ISO and the 9p share's
 * `shared/set_identifiers.sh` and `shared/identity.env`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError, MissingToolError } from "../errors.js";
import { runTool } from "../host/tools.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { type PreparedChange, preparedChange } from "../txn/change.js";
import { fsyncFile, renameIntoPlace, tempPathFor } from "../vm/atomic.js";
import type { CloudProfile } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { CIDATA_LABEL, type GuestFiles, renderGuestFiles, type SeedFiles } from "./cloudinit.js";
import {
  buildConfigDriveMetaData,
  buildConfigDriveNetworkData,
  CONFIG_DRIVE_LABEL,
  configDriveFiles,
  type IsoFile,
} from "./configdrive.js";
import type { GuestOptions } from "./hostname.js";
import { writeShareTemps } from "./script.js";

export interface SeedIsoOptions {
  /**
   * Environment for finding and running genisoimage (GLINT_GENISOIMAGE, PATH);
   * default process.env.
   */
  readonly env?: NodeJS.ProcessEnv;
}

export type SeedOptions = GuestOptions & SeedIsoOptions;

/**
 * Build the ISO into a new fsynced temp file next to `isoPath` and return
 * its path (the caller renames it into place or removes it).
 */
async function buildIsoTemp(
  files: readonly IsoFile[],
  label: string,
  isoPath: string,
  options: SeedIsoOptions = {},
): Promise<string> {
  const stage = tempPathFor(isoPath, "stage");
  const tmp = tempPathFor(isoPath);
  await fs.mkdir(stage, { mode: 0o700 });
  try {
    for (const file of files) {
      // Paths are Glint's own constants (ISO_PATH_RE), never a value.
      if (!ISO_PATH_RE.test(file.path)) throw new GlintError(`bad ISO path ${file.path}`);
      const target = path.join(stage, ...file.path.split("/"));
      await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
      await fs.writeFile(target, file.content, { mode: 0o644 });
    }
    try {
      await runTool(
        "genisoimage",
        [
          "-quiet",
          "-input-charset",
          "utf-8",
          "-output",
          tmp,
          "-volid",
          label,
          "-joliet",
          "-rock",
          stage,
        ],
        { env: options.env, maxBuffer: 4 * 1024 * 1024 },
      );
    } catch (error) {
      await fs.rm(tmp, { force: true });
      if (error instanceof MissingToolError) throw error;
      // runTool's cause is execFile's error; keep the last lines of stderr.
      const e = (error instanceof GlintError ? error.cause : error) as
        | (Error & { stderr?: string })
        | undefined;
      const detail = (e?.stderr ?? "").trim().split("\n").slice(-3).join(" ");
      throw new GlintError(`genisoimage failed: ${detail || e?.message || String(error)}`, {
        code: "tool-failed",
        details: { tool: "genisoimage" },
        cause: e ?? error,
      });
    }
    await fsyncFile(tmp);
    return tmp;
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

const ISO_PATH_RE = /^[a-z0-9_-]+(\/[a-z0-9_.-]+)*$/;

/** The NoCloud seed's files. */
function noCloudFiles(seed: SeedFiles): IsoFile[] {
  return [
    { path: "meta-data", content: seed.metaData },
    { path: "user-data", content: seed.userData },
  ];
}

/** Build a NoCloud seed ISO (label `cidata`) at `isoPath`, atomically (temp + rename). */
export async function buildSeedIso(
  files: SeedFiles,
  isoPath: string,
  options: SeedIsoOptions = {},
): Promise<void> {
  const tmp = await buildIsoTemp(noCloudFiles(files), CIDATA_LABEL, isoPath, options);
  await renameIntoPlace(tmp, isoPath);
}

/** The seed file a VM boots with: `seed.iso` (NoCloud) or `config-drive.iso` (OpenStack). */
export function seedFileOf(paths: VmPaths, cloud: CloudProfile = "nocloud"): string {
  return cloud === "openstack" ? paths.configDrive : paths.seedIso;
}

/** The files and label of the VM's seed for its cloud profile. */
function seedVolume(
  vmName: string,
  files: GuestFiles,
  cloud: CloudProfile,
): { files: IsoFile[]; label: string } {
  if (cloud !== "openstack") return { files: noCloudFiles(files.seed), label: CIDATA_LABEL };
  const meta = buildConfigDriveMetaData(vmName, files.hostname, files.identity);
  const net = buildConfigDriveNetworkData(files.identity);
  return { files: configDriveFiles(meta, net, files.seed.userData), label: CONFIG_DRIVE_LABEL };
}

/**
 * Build an OpenStack config drive (label `config-2`) for `vmName` with
 * identity `ids` at `isoPath`, atomically.
 */
export async function buildConfigDrive(
  vmName: string,
  ids: SystemIdentifiers,
  isoPath: string,
  options: SeedOptions = {},
): Promise<void> {
  const volume = seedVolume(vmName, renderGuestFiles(vmName, ids, options), "openstack");
  const tmp = await buildIsoTemp(volume.files, volume.label, isoPath, options);
  await renameIntoPlace(tmp, isoPath);
}

/** Render and build the VM's seed: `<vm>/seed.iso`, or `<vm>/config-drive.iso` for OpenStack. */
export async function writeSeed(
  paths: VmPaths,
  ids: SystemIdentifiers,
  options: SeedOptions = {},
): Promise<string> {
  const cloud = options.cloud ?? "nocloud";
  const volume = seedVolume(paths.name, renderGuestFiles(paths.name, ids, options), cloud);
  const target = seedFileOf(paths, cloud);
  await fs.mkdir(paths.dir, { recursive: true });
  const tmp = await buildIsoTemp(volume.files, volume.label, target, options);
  await renameIntoPlace(tmp, target);
  return target;
}

/**
 * Two-phase variant for transactional regeneration: write identity.env and
 * the script and build the seed ISO into temp files inside the VM directory;
 * `commit()` renames all three into place, `abort()` removes them. Nothing
 * visible changes before `commit()`.
 */
export async function prepareGuestFiles(
  paths: VmPaths,
  vmName: string,
  ids: SystemIdentifiers,
  options: SeedOptions = {},
): Promise<PreparedChange> {
  // paths.name was validated by vmPaths(); the name must be that one.
  if (vmName !== paths.name) {
    throw new GlintError(`prepareGuestFiles: VM name ${vmName} does not match ${paths.name}`);
  }
  const files = renderGuestFiles(vmName, ids, options);
  const cloud = options.cloud ?? "nocloud";
  const seedFile = seedFileOf(paths, cloud);
  const volume = seedVolume(vmName, files, cloud);
  const share = await writeShareTemps(paths, files);
  let isoTmp: string;
  try {
    isoTmp = await buildIsoTemp(volume.files, volume.label, seedFile, options);
  } catch (error) {
    await Promise.all([share.identityEnv, share.script].map((t) => fs.rm(t, { force: true })));
    throw error;
  }
  const renames: [tmp: string, target: string][] = [
    [share.identityEnv, paths.identityEnv],
    [share.script, paths.script],
    [isoTmp, seedFile],
  ];
  return preparedChange({
    what: "guest file update",
    async commit(markCommitted) {
      // Committed from the start: a failure below removes the temps itself,
      // so abort() has nothing left to do.
      markCommitted();
      for (const [i, [tmp, target]] of renames.entries()) {
        try {
          await renameIntoPlace(tmp, target);
        } catch (error) {
          const left = renames.slice(i + 1);
          await Promise.all(left.map(([t]) => fs.rm(t, { force: true })));
          if (i === 0) throw error;
          const done = renames.slice(0, i).map(([, t]) => t);
          throw new GlintError(
            `guest files: ${done.join(" and ")} ${done.length > 1 ? "are" : "is"} new but ${target} could not be replaced`,
            { cause: error },
          );
        }
      }
    },
    async abort() {
      await Promise.all(renames.map(([t]) => fs.rm(t, { force: true })));
    },
  });
}
