import { contentWitness, mtimeOf } from "./audit/index.js";
import type { Manifest } from "./backup/archive.js";
import { archiveLive, archiveVm, type BackupOptions, isRunning } from "./backup/backup.js";
import { type RestoreOptions, type RestoreResult, restoreArchive } from "./backup/restore.js";
import { GlintError, glintError } from "./errors.js";
import { readEkFingerprint } from "./firmware/index.js";
import {
  guestOptionsOf,
  renderPostInstallScript,
  createPostInstallScript as writeScriptFile,
  writeSeed,
} from "./guest/index.js";
import { requireTool } from "./host/tools.js";
import { extraMacsOf, type IdentifierField, type SystemIdentifiers } from "./identity/model.js";
import { POLICIES, type PolicyName } from "./identity/policies.js";
import { ManagerCore, type UuidManagerOptions } from "./manager-core.js";
import { adoptVm, type CreateVmOptions, createVm } from "./ops/create.js";
import { sysprepInputFor } from "./ops/disk-identity.js";
import { checkEdit, type EditChanges, editVm } from "./ops/edit.js";
import type { UsableVm } from "./ops/inspect.js";
import type { VmListing } from "./ops/listing.js";
import { assertOwnMacs, ensureExtraMacs, extraMacsNeeded, runNicMacs } from "./ops/nics.js";
import { resetOne } from "./ops/reset-steps.js";
import { type RunOptions, type RunResult, runVm, vmArgv } from "./ops/run.js";
import { applyIdentifiersToQemuCommand } from "./qemu/index.js";
import { registryValue } from "./registry/model.js";
import { type SysprepOptions, type SysprepReport, sysprepImage } from "./sysprep/index.js";
import type { OperationOptions, OperationResult } from "./txn/engine.js";
import { tpmStateFile, type VmPaths } from "./vm/layout.js";
import type { Duplicate } from "./vm/registry.js";

export type {
  BackupOptions,
  CreateVmOptions,
  EditChanges,
  OperationOptions,
  OperationResult,
  RestoreOptions,
  RestoreResult,
  UsableVm,
  UuidManagerOptions,
  VmListing,
};

/** The library's facade: every operation on the VMs of one home. */
export class UuidManager extends ManagerCore {
  /** The "fresh" policy: refuses if the VM has identifiers unless `forceRegenerate`. */
  async generateFreshIdentifiers(vm: string, options: OperationOptions = {}) {
    return this.regenerate(vm, "fresh", options);
  }

  /** The "disk" policy: new disk-side UUIDs and vm_generation_id; keeps vm_uuid, MAC and machine_id. */
  async regenerateDiskIdentifiers(vm: string, options: OperationOptions = {}) {
    return this.regenerate(vm, "disk", options);
  }

  /** The "base" policy: every identifier anew (after cloning, or for a new base image). */
  async regenerateBaseIdentifiers(vm: string, options: OperationOptions = {}) {
    return this.regenerate(vm, "base", options);
  }

  /** The "nuke" policy: every identifier anew, and fresh UEFI, TPM and overlay. */
  async nukeAndRegenerateAll(vm: string, options: OperationOptions = {}) {
    return this.regenerate(vm, "nuke", options);
  }

  /** Run any policy by name. */
  async regenerate(
    vm: string,
    policy: PolicyName,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    const paths = this.paths(vm);
    return this.engine.withVm(paths, POLICIES[policy].command, () =>
      this.engine.runPolicy(paths, POLICIES[policy], options),
    );
  }

  /** Create a VM: config, disks, UEFI NVRAM and TPM, then fresh identifiers, script and seed. */
  async createVm(vm: string, options: CreateVmOptions = {}): Promise<OperationResult> {
    const paths = this.paths(vm);
    return this.engine.withVm(paths, POLICIES.fresh.command, (recovered) =>
      createVm(this.engine, paths, options, this.env, recovered),
    );
  }

  /**
   * Create a VM as `createVm` does, but batched with the other calls made
   * at the same moment (`glint create NAME… | --count`): a new VM without
   * provisioning options and without `forceRegenerate` goes through the
   * bulk path (src/ops/batch-create.ts, one fsync per batch); any other
   * through `createVm`.
   */
  createBatched(vm: string, options: CreateVmOptions = {}): Promise<OperationResult> {
    return this.batches.create(vm, options);
  }

  /** Whether creates with `options` can take the batched path of `createBatched`. */
  canBatch(options: CreateVmOptions = {}): boolean {
    return this.batches.canBatch(options);
  }

  /** Replace uefi-instance.fd with a fresh copy of uefi-seed.fd; the old one goes to history/. */
  async resetUefiVariables(vm: string): Promise<void> {
    await this.reset(vm, "uefi");
  }

  /** Wipe the VM's TPM and manufacture a new one (new EK); resolves to the new EK's fingerprint. */
  async resetTpm(vm: string, options: Pick<OperationOptions, "onProgress"> = {}): Promise<string> {
    await this.reset(vm, "tpm", options);
    return readEkFingerprint(this.paths(vm).tpm);
  }

  private async reset(
    vm: string,
    step: "uefi" | "tpm",
    options: Pick<OperationOptions, "onProgress"> = {},
  ): Promise<void> {
    const paths = this.paths(vm);
    const file = step === "uefi" ? paths.uefiInstance : tpmStateFile(paths);
    await this.engine.withVm(paths, `glint reset ${step}`, async () =>
      this.audit.change(
        vm,
        `reset-${step}`,
        {},
        await contentWitness(file, step === "uefi" ? "uefi_vars_sha256" : "tpm_state_sha256"),
        () => resetOne(this.engine, paths, step, options),
      ),
    );
  }

  /**
   * Archive the VM to `target` (see src/backup/): refused while it runs,
   * unless `live` (QMP pauses it meanwhile). Written atomically; audited.
   */
  async backup(vm: string, target: string, options: BackupOptions = {}): Promise<Manifest> {
    const paths = this.paths(vm);
    await this.assertExists(vm);
    let manifest: Manifest;
    if (await isRunning(paths)) {
      if (!options.live) {
        throw new GlintError(
          `VM "${vm}" is running; stop it, or give --live to pause it meanwhile`,
          {
            code: "busy",
            details: { vm, reason: "backup-running" },
          },
        );
      }
      manifest = await archiveLive(paths, target, options);
    } else {
      manifest = await this.engine.withVm(paths, "glint backup", () =>
        archiveVm(paths, target, options, false),
      );
    }
    await this.audit.append(vm, "backup", {
      archive: { old: null, new: target },
      members: { old: null, new: manifest.members.length },
    });
    return manifest;
  }

  /** Restore a VM from a backup archive (see src/backup/restore.ts). */
  async restore(file: string, options: RestoreOptions = {}): Promise<RestoreResult> {
    return restoreArchive(
      { home: this.home, engine: this.engine, registry: () => this.registry(), audit: this.audit },
      file,
      options,
    );
  }

  /**
   * The QEMU arguments (without the binary) for the VM. Reads only: a NIC
   * (the VM's own, or one in `extra`) that has no extra MAC yet is refused
   * (code `unsupported`, reason `nic-macs-missing`), unless `drawMacs`: then
   * the missing MACs are drawn under the VM's lock and kept in
   * identifiers.json.
   */
  async qemuArgs(
    vm: string,
    extra: readonly string[] = [],
    options: { readonly drawMacs?: boolean } = {},
  ): Promise<string[]> {
    const { paths, ids, config } = await this.withNicMacs(
      vm,
      extra,
      options.drawMacs ? "draw" : "read",
    );
    return vmArgv({ paths, config, ids, extra, env: this.env });
  }

  /**
   * Change a stopped VM's memory, CPUs, NICs, disk size, firmware or TPM
   * (see src/ops/edit.ts), under its lock; resolves to what changed.
   */
  async editVm(
    vm: string,
    changes: EditChanges,
    onProgress?: (message: string) => void,
  ): Promise<string[]> {
    checkEdit(changes);
    const paths = this.paths(vm);
    return this.engine.withVm(paths, "glint edit", async () => {
      const registry = await this.registry();
      return editVm(paths, changes, {
        env: this.env,
        onProgress,
        identity: async () => (await this.usable(vm)).ids,
        extraMacs: async (ids, count) =>
          ensureExtraMacs(
            await this.macDeps(registry, (await this.getConfig(vm)).mac_prefix),
            paths,
            ids,
            count,
          ),
      });
    });
  }

  /**
   * The VM, with an extra MAC for every NIC after the first (its own, then
   * those in `extra`) that has none; a NIC MAC in `extra` that another VM
   * holds is refused. Missing MACs are drawn and kept (`locked`: the caller
   * holds the VM's lock; `draw`: under the lock taken here), or refused
   * (`read`: a command that changes nothing).
   */
  private async withNicMacs(
    vm: string,
    extra: readonly string[],
    mode: "locked" | "draw" | "read",
  ) {
    const usable = await this.usable(vm);
    const macs = runNicMacs(usable.config, extra);
    const registry = await this.registry();
    await assertOwnMacs(registry, vm, macs);
    const needed = extraMacsNeeded(macs);
    const have = extraMacsOf(usable.ids).length;
    if (have >= needed) return usable;
    if (mode === "read") {
      throw glintError(
        "unsupported",
        `VM "${vm}" has no MAC yet for ${needed - have} of its NICs, and this command changes nothing (it draws none)`,
        { vm, reason: "nic-macs-missing" },
      );
    }
    const draw = async (u: UsableVm): Promise<UsableVm> => ({
      ...u,
      ids: await ensureExtraMacs(
        await this.macDeps(registry, u.config.mac_prefix),
        u.paths,
        u.ids,
        needed,
      ),
    });
    if (mode === "locked") return draw(usable);
    return this.engine.withVm(usable.paths, "glint qemu-args", async () =>
      draw(await this.usable(vm)),
    );
  }

  /** The whole QEMU command line, binary first. */
  async qemuCommand(vm: string, extra: readonly string[] = []): Promise<string[]> {
    const qemu = await requireTool("qemu-system-x86_64", this.env);
    return [qemu, ...(await this.qemuArgs(vm, extra))];
  }

  /** The seed's `apply_identifiers_to_qemu_command`: idempotent, replaces identity options already present. */
  applyIdentifiersToQemuCommand(baseArgv: readonly string[], ids: SystemIdentifiers): string[] {
    return applyIdentifiersToQemuCommand(baseArgv, ids);
  }

  /** Write `<vm>/shared/set_identifiers.sh` for the VM's identity (or for `identifiers`). */
  async createPostInstallScript(vm: string, identifiers?: SystemIdentifiers): Promise<string> {
    const paths = this.paths(vm);
    return this.engine.withVm(paths, "glint script", async () => {
      const { ids, config } = await this.usable(vm);
      return writeScriptFile(paths, identifiers ?? ids, guestOptionsOf(config));
    });
  }

  /** The post-install script's text for the current identity. */
  async renderPostInstallScript(vm: string): Promise<string> {
    const { ids, config } = await this.usable(vm);
    return renderPostInstallScript(vm, ids, guestOptionsOf(config));
  }

  /** Rebuild `<vm>/seed.iso` (NoCloud, label cidata) or `config-drive.iso` (OpenStack); returns its path. */
  async writeSeedIso(vm: string): Promise<string> {
    const paths = this.paths(vm);
    return this.engine.withVm(paths, "glint seed", async () => {
      const { ids, config } = await this.usable(vm);
      return writeSeed(paths, ids, { ...guestOptionsOf(config), env: this.env });
    });
  }

  /**
   * Run the VM in the foreground, holding its lock for QEMU's whole life.
   * Resolves to QEMU's exit code; with `dryRun`, to the command, changing nothing.
   */
  async run(vm: string, options: RunOptions = {}): Promise<RunResult> {
    const go = async () => {
      const { paths, ids, config } = await this.withNicMacs(
        vm,
        options.extra ?? [],
        options.dryRun ? "read" : "locked",
      );
      return runVm(paths, config, ids, options, this.env);
    };
    if (options.dryRun) return go();
    return this.engine.withVm(this.paths(vm), "glint run", go);
  }

  /** Run `fn` on the usable VM holding its lock (refused while its QEMU runs). */
  async withUsableVm<T>(vm: string, purpose: string, fn: (vm: UsableVm) => Promise<T>): Promise<T> {
    return this.engine.withVm(this.paths(vm), purpose, async () => fn(await this.usable(vm)));
  }

  /**
   * Adopt an identity into a new VM (`glint libvirt import`): under the VM's
   * lock, `setup` writes its config and files, then the values of `preset`
   * are taken where no VM holds them and every other value is drawn, through
   * the engine like a create. Resolves to the result and the preset values
   * another VM holds (drawn fresh instead).
   */
  async adoptVm(
    vm: string,
    setup: (paths: VmPaths) => Promise<void>,
    preset: NonNullable<OperationOptions["preset"]>,
    options: Pick<OperationOptions, "onProgress"> = {},
  ): Promise<{ result: OperationResult; collisions: Duplicate[] }> {
    const paths = this.paths(vm);
    return this.engine.withVm(paths, "glint libvirt import", async () => {
      const taken = new Map<IdentifierField, string>();
      const result = await adoptVm(this.engine, paths, setup, {
        ...options,
        preset,
        onPresetTaken: (field, value) => taken.set(field, value),
      });
      const registry = await this.registry();
      const collisions: Duplicate[] = [];
      for (const [field, value] of taken) {
        const rows = await registry.ownersOf([registryValue(field, value)]);
        const owners = rows.map((r) => r.vm).filter((o) => o !== vm);
        collisions.push({ field, value, vms: owners });
      }
      return { result, collisions };
    });
  }

  /**
   * Write the VM's identity into `image` offline (`glint sysprep`): under the
   * VM's lock, refused while its QEMU runs; `dryRun` only reads.
   */
  async sysprep(vm: string, image: string, options: SysprepOptions = {}): Promise<SysprepReport> {
    const apply = async () => {
      const { ids, config } = await this.usable(vm);
      return sysprepImage(image, sysprepInputFor(vm, ids, config), { ...options, env: this.env });
    };
    if (options.dryRun) return apply();
    return this.engine.withVm(this.paths(vm), "glint sysprep", async () =>
      this.audit.change(
        vm,
        "sysprep",
        { image: { old: null, new: image } },
        { kind: "mtime", path: image, before: await mtimeOf(image) },
        apply,
      ),
    );
  }
}

/** The seed's `get_uuid_manager()`. */
export function getUuidManager(options: UuidManagerOptions = {}): UuidManager {
  return new UuidManager(options);
}
