/**
 * `glint restore FILE [--as NAME] [--as-clone] [--force]`.
 *
 * The archive is extracted into a staging directory in `<home>/.glint/` and
 * every member checked against the manifest before anything else happens; a
 * truncated, corrupted or foreign archive is refused with the staging
 * directory removed (nothing is left behind).
 *
 * A plain restore puts the VM back exactly as archived (same identity, TPM,
 * UEFI variables). It is refused when the VM exists, unless `force`: then
 * the current identifiers.json goes into the restored history/ first and the
 * whole current directory is kept in `<home>/.glint/archive/`. It is refused
 * when any value of the archived identity now belongs to another VM, in the
 * home's files or in the registry, naming it.
 *
 * `asClone` restores the disks and config under a new name (`as`), then
 * draws a whole new identity through the `nuke` policy (new UEFI variables,
 * new TPM, and — for a VM with an overlay — a fresh overlay, the restored one
 * being kept in the clone's history/). The original's identity is not kept.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import type { HomeAudit } from "../audit/home.js";
import { contentWitness } from "../audit/intent.js";
import { diffFields } from "../audit/record.js";
import { glintError, UsageError } from "../errors.js";
import { identifiersToDict, parseIdentifiers, type SystemIdentifiers } from "../identity/model.js";
import { POLICIES } from "../identity/policies.js";
import { valuesOf } from "../registry/model.js";
import type { Registry } from "../registry/registry.js";
import type { Engine } from "../txn/engine.js";
import { fsyncDir, tempPathFor } from "../vm/atomic.js";
import { vmConfigSchema } from "../vm/config.js";
import {
  assertVmName,
  HISTORY_OVERLAY_RE,
  historyPath,
  storePaths,
  VM_FILES,
  vmPaths,
} from "../vm/layout.js";
import { UsedValues } from "../vm/registry.js";
import { readIdentifiers } from "../vm/store.js";
import { badArchive, extractArchive, type Manifest } from "./archive.js";

export interface RestoreOptions {
  /** Restore under this name instead of the archived one. */
  readonly as?: string | undefined;
  /** Disks and config only, under `as`, with a new identity (nuke policy). */
  readonly asClone?: boolean | undefined;
  /** Replace an existing VM (its identity goes to history/ first). */
  readonly force?: boolean | undefined;
}

export interface RestoreResult {
  readonly vm: string;
  readonly from: string;
  readonly clone: boolean;
  readonly identifiers: SystemIdentifiers;
  /** Where the replaced VM directory was kept (with `force`), else null. */
  readonly replaced: string | null;
}

export interface RestoreDeps {
  readonly home: string;
  readonly engine: Engine;
  readonly registry: () => Promise<Registry>;
  readonly audit: HomeAudit;
}

/** Disk files: carried over from a replaced VM when the archive has none. */
const DISKS = [VM_FILES.base, VM_FILES.overlay];

export async function restoreArchive(
  deps: RestoreDeps,
  file: string,
  options: RestoreOptions,
): Promise<RestoreResult> {
  if (options.asClone && options.as === undefined) {
    throw new UsageError("--as-clone needs --as NAME (the clone's name)");
  }
  if (options.as !== undefined) assertVmName(options.as);
  if (!(await fs.stat(file).catch(() => undefined))?.isFile()) {
    throw glintError("not-found", `${file}: no such archive`, { file });
  }
  const store = storePaths(deps.home);
  await fs.mkdir(store.dir, { recursive: true });
  const staging = tempPathFor(path.join(store.dir, "restore"));
  try {
    const manifest = await extractArchive(file, staging);
    const ids = await stagedIdentity(file, staging);
    await stagedConfig(file, staging);
    const target = options.as ?? manifest.vm;
    assertVmName(target);
    if (options.asClone && !manifest.with_disk) {
      throw glintError(
        "unsupported",
        `${file} holds no disks (made without --with-disk): a clone restores the disks, so it needs them`,
        { file, reason: "archive-no-disk" },
      );
    }
    await relink(file, staging, manifest);
    return options.asClone
      ? await restoreClone(deps, file, staging, target)
      : await restoreSame(deps, file, staging, manifest, target, ids, Boolean(options.force));
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/**
 * Recreate in `staging` the links Glint made (a linked base.qcow2, whose
 * target is outside the VM directory and so not in the archive). A target
 * that no longer exists is refused: the restored overlay would have no base.
 */
async function relink(file: string, staging: string, manifest: Manifest): Promise<void> {
  for (const link of manifest.links) {
    const at = path.join(staging, link.path);
    if (await fs.lstat(at).catch(() => undefined)) continue;
    if (!(await fs.stat(link.target).catch(() => undefined))?.isFile()) {
      throw glintError(
        "not-found",
        `${file}: the VM's ${link.path} is a link to the shared base image ${link.target}, which no longer exists; put that image back at this path, then restore again`,
        { file, reason: "restore-no-base" },
      );
    }
    await fs.symlink(link.target, at);
  }
}

async function stagedIdentity(file: string, staging: string): Promise<SystemIdentifiers> {
  const raw = await fs.readFile(path.join(staging, VM_FILES.identifiers), "utf8").catch(() => {
    throw badArchive(file, "holds no identifiers.json");
  });
  try {
    return parseIdentifiers(JSON.parse(raw), `${file}: identifiers.json`);
  } catch (error) {
    throw badArchive(file, `identifiers.json is not valid (${(error as Error).message})`);
  }
}

async function stagedConfig(file: string, staging: string): Promise<void> {
  const raw = await fs.readFile(path.join(staging, VM_FILES.config), "utf8").catch(() => undefined);
  if (raw === undefined) return;
  try {
    vmConfigSchema.parse(JSON.parse(raw));
  } catch (error) {
    throw badArchive(file, `config.json is not valid (${(error as Error).message.split("\n")[0]})`);
  }
}

/** The first value of `ids` held by a VM other than `vm`, in the files or the registry. */
async function foreignHolder(deps: RestoreDeps, vm: string, ids: SystemIdentifiers) {
  const used = new UsedValues(deps.home);
  await used.refresh({ force: true });
  const local = used.conflictsOf(vm, ids)[0];
  if (local) return local;
  const registry = await deps.registry();
  const rows = await registry.ownersOf(valuesOf(ids));
  const other = rows.find((r) => r.home !== registry.homeId || r.vm !== vm);
  return (
    other && {
      field: other.field,
      value: other.value,
      vm: other.home === registry.homeId ? other.vm : `${other.home}/${other.vm}`,
    }
  );
}

async function restoreSame(
  deps: RestoreDeps,
  file: string,
  staging: string,
  manifest: Manifest,
  target: string,
  ids: SystemIdentifiers,
  force: boolean,
): Promise<RestoreResult> {
  const paths = vmPaths(deps.home, target);
  return deps.engine.withVm(paths, "glint restore", async () => {
    const exists = existsSync(paths.dir);
    if (exists && !force) {
      throw glintError(
        "conflict",
        `VM "${target}" exists; give --force to replace it (its identity is kept in history/)`,
        {
          vm: target,
          reason: "restore-exists",
        },
      );
    }
    const clash = await foreignHolder(deps, target, ids);
    if (clash) {
      throw glintError(
        "conflict",
        `the archive's ${clash.field} ${clash.value} now belongs to VM "${clash.vm}"; restore it as a clone (--as NAME --as-clone)`,
        { vm: target, reason: "restore-duplicate" },
      );
    }
    const current = exists ? await readIdentifiers(paths).catch(() => undefined) : undefined;
    const replaced = exists
      ? path.join(
          storePaths(deps.home).archive,
          `${target}-${new Date().toISOString().replaceAll(":", "-")}-replaced`,
        )
      : null;
    if (exists) {
      // The current identity first goes into the restored history/.
      if (existsSync(paths.identifiers)) {
        const dest = path.join(
          staging,
          VM_FILES.history,
          path.basename(historyPath(paths, paths.identifiers, "restore")),
        );
        await fs.mkdir(path.dirname(dest), { recursive: true });
        await fs.copyFile(paths.identifiers, dest);
      }
      // An archive without disks keeps the VM's disks.
      if (!manifest.with_disk) {
        for (const d of DISKS) {
          const from = path.join(paths.dir, d);
          if ((await fs.lstat(from).catch(() => undefined)) && !existsSync(path.join(staging, d))) {
            await fs.rename(from, path.join(staging, d));
          }
        }
      }
    }
    // Values no one holds are claimed for the VM (it is issued again).
    await (await deps.registry()).conflictsOf(target, ids);
    const changes = {
      ...diffFields(current && identifiersToDict(current), identifiersToDict(ids)),
      archive: { old: null, new: path.resolve(file) },
    };
    await deps.audit.change(
      target,
      "restore",
      changes,
      await contentWitness(paths.identifiers),
      async () => {
        if (replaced) {
          await fs.mkdir(path.dirname(replaced), { recursive: true, mode: 0o700 });
          await fs.rename(paths.dir, replaced);
        }
        await fs.rename(staging, paths.dir);
        await fsyncDir(deps.home);
      },
    );
    return { vm: target, from: file, clone: false, identifiers: ids, replaced };
  });
}

/** What a clone keeps of the archive: its machine (config, disks, firmware files), not its identity. */
const CLONE_DROPS = [VM_FILES.history, VM_FILES.shared, VM_FILES.seedIso];

async function restoreClone(
  deps: RestoreDeps,
  file: string,
  staging: string,
  target: string,
): Promise<RestoreResult> {
  const paths = vmPaths(deps.home, target);
  for (const d of CLONE_DROPS) await fs.rm(path.join(staging, d), { recursive: true, force: true });
  return deps.engine.withVm(paths, "glint restore", async () => {
    if ((await fs.lstat(paths.dir).catch(() => undefined)) !== undefined) {
      throw glintError("conflict", `VM "${target}" exists; a clone needs a new name`, {
        vm: target,
        reason: "restore-exists",
      });
    }
    await fs.rename(staging, paths.dir);
    let result: Awaited<ReturnType<Engine["runPolicy"]>>;
    try {
      result = await deps.engine.runPolicy(paths, POLICIES.nuke, {});
    } catch (error) {
      // The clone still carries the original's identity: it must not stay.
      await fs.rm(paths.dir, { recursive: true, force: true });
      throw error;
    }
    // The original's identity is not the clone's past: of what the nuke
    // archived, only the restored overlay (the guest's writes) is kept.
    if (result.archived) await fs.rm(result.archived, { force: true });
    for (const name of await fs.readdir(paths.history).catch(() => [] as string[])) {
      if (!HISTORY_OVERLAY_RE.test(name)) {
        await fs.rm(path.join(paths.history, name), { recursive: true, force: true });
      }
    }
    await deps.audit.append(target, "restore-clone", {
      archive: { old: null, new: path.resolve(file) },
      vm_uuid: { old: null, new: result.identifiers.vm_uuid },
    });
    return { vm: target, from: file, clone: true, identifiers: result.identifiers, replaced: null };
  });
}
