import { existsSync } from "node:fs";
import { contentWitness, currentActor, diffFields, HomeAudit, mtimeOf } from "./audit/index.js";
import type { Manifest } from "./backup/archive.js";
import { archiveLive, archiveVm, type BackupOptions, isRunning } from "./backup/backup.js";
import { type RestoreOptions, type RestoreResult, restoreArchive } from "./backup/restore.js";
import { GlintError, messageOf } from "./errors.js";
import { readEkFingerprint } from "./firmware/index.js";
import {
  guestOptionsOf,
  renderPostInstallScript,
  createPostInstallScript as writeScriptFile,
  writeSeed,
} from "./guest/index.js";
import { requireTool } from "./host/tools.js";
import type { RandomSource } from "./identity/generate.js";
import {
  extraMacsOf,
  type IdentifierField,
  identifiersToDict,
  type SystemIdentifiers,
} from "./identity/model.js";
import { POLICIES, type PolicyName } from "./identity/policies.js";
import { createBatch, recoverBatches } from "./ops/batch-create.js";
import { Batcher } from "./ops/batcher.js";
import { adoptVm, type CreateVmOptions, createVm } from "./ops/create.js";
import { sysprepInputFor } from "./ops/disk-identity.js";
import { checkEdit, type EditChanges, editVm } from "./ops/edit.js";
import {
  assertHasIdentity,
  assertNotBusy,
  readHistory,
  readIdentity,
  readUsable,
  readVmConfig,
  type UsableVm,
} from "./ops/inspect.js";
import { duplicatesOf, listHome, type VmListing } from "./ops/listing.js";
import { assertOwnMacs, ensureExtraMacs, extraMacsNeeded, runNicMacs } from "./ops/nics.js";
import { hasProvisioningOptions } from "./ops/provision.js";
import { DEFAULT_STEPS, resetOne } from "./ops/reset-steps.js";
import { type RunOptions, type RunResult, runVm, vmArgv } from "./ops/run.js";
import { templateFromConfig } from "./ops/template.js";
import { applyIdentifiersToQemuCommand } from "./qemu/index.js";
import { readHomeConfig } from "./registry/config.js";
import { checkedMacPrefix } from "./registry/mac.js";
import { registryValue } from "./registry/model.js";
import { Registry } from "./registry/registry.js";
import { type SysprepOptions, type SysprepReport, sysprepImage } from "./sysprep/index.js";
import {
  listTemplates,
  readTemplate,
  removeTemplate,
  saveTemplate,
  type TemplateEntry,
} from "./templates/index.js";
import { Engine, type OperationOptions, type OperationResult } from "./txn/engine.js";
import type { ResetSteps } from "./txn/steps.js";
import { defaultConfig, type VmConfig } from "./vm/config.js";
import {
  type ArchivedFile,
  type HistoryGeneration,
  historyGenerations,
  pruneHistory,
} from "./vm/history.js";
import { resolveHome, storePaths, tpmStateFile, type VmPaths, vmPaths } from "./vm/layout.js";
import { type Duplicate, UsedValues } from "./vm/registry.js";
import { type HistoryEntry, listVmNames } from "./vm/store.js";

export type {
  BackupOptions,
  CreateVmOptions,
  EditChanges,
  OperationOptions,
  OperationResult,
  RestoreOptions,
  RestoreResult,
  UsableVm,
  VmListing,
};

export interface UuidManagerOptions {
  /** VM home; defaults to `$GLINT_HOME` or `./vms_linux`. */
  home?: string;
  /** Injected randomness for tests; defaults to `crypto.randomBytes`. */
  random?: RandomSource;
  env?: NodeJS.ProcessEnv;
  /** Implementations of the policies' reset steps. */
  steps?: ResetSteps;
  /** How long to wait for the store-wide lock (ms); 30 s by default. */
  storeLockWaitMs?: number;
  /** Told when a command first finishes or rolls back an interrupted operation. */
  onNotice?: (message: string) => void;
  /**
   * The registry of issued values: `postgres://…`, `sqlite:FILE` or a file;
   * default `$GLINT_REGISTRY`, the home's `.glint/config.json`, else
   * `<home>/.glint/registry.db`.
   */
  registry?: string;
  /** The command line audit records name (default: this process's argv). */
  command?: string;
}

export class UuidManager {
  readonly home: string;
  private readonly env: NodeJS.ProcessEnv;
  /** The home's audit log; every state change appends to it (src/audit/). */
  readonly audit: HomeAudit;
  private readonly engine: Engine;
  private opened: Promise<Registry> | undefined;
  private batcher: Batcher<OperationResult> | undefined;

  constructor(private readonly options: UuidManagerOptions = {}) {
    this.env = options.env ?? process.env;
    this.home = resolveHome(options.home, this.env);
    const notify = options.onNotice ?? (() => {});
    const actor = currentActor(options.command);
    const sink = async () => (await this.registry()).auditSink();
    this.audit = new HomeAudit(this.home, {
      actor,
      sink,
      waitMs: options.storeLockWaitMs ?? 30_000,
      notify,
    });
    this.engine = new Engine({
      audit: { actor, sink },
      home: this.home,
      env: this.env,
      steps: options.steps ?? DEFAULT_STEPS,
      random: options.random,
      storeLockWaitMs: options.storeLockWaitMs ?? 30_000,
      notify,
      registry: () => this.registry(),
      macPrefix: (registry, prefix) => checkedMacPrefix(this.home, registry, notify, prefix),
    });
  }

  /** The registry of issued values, opened on first use (a failed open is tried again next time). */
  registry(): Promise<Registry> {
    const notify = this.options.onNotice ?? (() => {});
    const waitMs = this.options.storeLockWaitMs ?? 30_000;
    this.opened ??= Registry.open(this.home, {
      registry: this.options.registry,
      env: this.env,
      storeLockWaitMs: waitMs,
      notify,
    })
      .then(async (registry) => {
        // Settle the bulk creates of processes that are gone.
        const n = await recoverBatches(registry, waitMs).catch((error: unknown) => {
          notify(`an interrupted bulk create could not be settled yet (${messageOf(error)})`);
          return 0;
        });
        if (n > 0) notify(`settled ${n} interrupted bulk create(s)`);
        return registry;
      })
      .catch((error: unknown) => {
        this.opened = undefined;
        throw error;
      });
    return this.opened;
  }

  /** Close the registry connection, if one is open. */
  async close(): Promise<void> {
    const opened = this.opened;
    this.opened = undefined;
    if (opened) await (await opened.catch(() => undefined))?.close();
  }

  /** Paths of a VM; throws a UsageError for an invalid name. */
  paths(vm: string): VmPaths {
    return vmPaths(this.home, vm);
  }

  /** Throws a BusyError if another live process holds the VM, or its QEMU runs. */
  async assertNotBusy(vm: string): Promise<void> {
    await assertNotBusy(this.paths(vm));
  }

  /** Names of all VMs in the home directory (symlinked ones too: every command refuses those). */
  async listVms(): Promise<string[]> {
    return listVmNames(this.home, { includeSymlinks: true });
  }

  /**
   * Every VM with its state and what `glint list` shows: from the registry's
   * index when the home has a registry (and it opens), else from the files.
   */
  async listing(): Promise<VmListing[]> {
    const config = await readHomeConfig(this.home).catch(() => ({ registry: undefined }));
    const has =
      (this.options.registry ?? this.env.GLINT_REGISTRY ?? config.registry) !== undefined ||
      existsSync(storePaths(this.home).registryDb);
    const registry = has ? await this.registry().catch(() => undefined) : undefined;
    return listHome(this.home, registry);
  }

  /** The VM's identifiers; throws if it has none, or if an operation on it is pending. */
  async getIdentifiers(vm: string): Promise<SystemIdentifiers> {
    return readIdentity(this.paths(vm));
  }

  /**
   * Throws unless the VM has an identity (or an operation in progress that
   * gives it one): the check a changing command makes before it asks.
   */
  async assertExists(vm: string): Promise<void> {
    await assertHasIdentity(this.paths(vm));
  }

  /** The VM's config.json (defaults if it has none). */
  async getConfig(vm: string): Promise<VmConfig> {
    return readVmConfig(this.paths(vm));
  }

  /** Past identities of a VM, oldest first. */
  async history(vm: string): Promise<HistoryEntry[]> {
    return readHistory(this.paths(vm));
  }

  /** The VM's history/ as generations (identity, NVRAM, TPM state, overlays), oldest first. */
  async historyGenerations(vm: string): Promise<HistoryGeneration[]> {
    await readHistory(this.paths(vm));
    return historyGenerations(this.paths(vm));
  }

  /** Remove all but the `keep` newest archived generations of a VM, under its lock. */
  async pruneHistory(vm: string, keep: number): Promise<ArchivedFile[]> {
    const paths = this.paths(vm);
    await readHistory(paths);
    return this.engine.withVm(paths, "glint history prune", () => pruneHistory(paths, keep));
  }

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
    this.paths(vm); // a bad name fails here, alone
    if (!this.canBatch(options)) return this.createVm(vm, options);
    const steps = this.engine.applicableSteps(POLICIES.fresh, defaultConfig());
    this.batcher ??= new Batcher((names) => this.runBatch(names, steps.includes("guest-files")));
    return this.batcher.add(vm);
  }

  /** Whether creates with `options` can take the batched path of `createBatched`. */
  canBatch(options: CreateVmOptions = {}): boolean {
    const steps = this.engine.applicableSteps(POLICIES.fresh, defaultConfig());
    return (
      !options.forceRegenerate &&
      !hasProvisioningOptions(options) &&
      steps.every((s) => s === "guest-files")
    );
  }

  private async runBatch(
    names: readonly string[],
    guestFiles: boolean,
  ): Promise<Map<string, OperationResult | Error>> {
    const out = new Map<string, OperationResult | Error>();
    const fresh: string[] = [];
    for (const vm of names) {
      if (existsSync(this.paths(vm).dir))
        out.set(vm, await this.createVm(vm).catch((e: Error) => e));
      else fresh.push(vm);
    }
    if (fresh.length === 0) return out;
    const { done } = await createBatch(
      {
        home: this.home,
        env: this.env,
        random: this.options.random,
        storeLockWaitMs: this.options.storeLockWaitMs ?? 30_000,
        registry: () => this.registry(),
        macPrefix: (registry) =>
          checkedMacPrefix(this.home, registry, this.options.onNotice ?? (() => {})),
        guestFiles,
      },
      fresh,
    );
    for (const [vm, r] of done) {
      out.set(vm, r);
      // The batch path has no per-VM journal: its records follow the commit
      // (a crash in between leaves those VMs without their create record).
      if (!(r instanceof Error))
        await this.audit.append(
          vm,
          "create",
          diffFields(undefined, identifiersToDict(r.identifiers)),
        );
    }
    return out;
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

  /** The fingerprint of the VM's TPM endorsement key, or undefined without a TPM. */
  async ekFingerprint(vm: string): Promise<string | undefined> {
    const config = await this.getConfig(vm);
    return config.tpm ? readEkFingerprint(this.paths(vm).tpm) : undefined;
  }

  /**
   * The QEMU arguments (without the binary) for the VM. Reads only, unless a
   * NIC in `extra` needs an extra MAC the VM has not been given yet: then it
   * draws one under the VM's lock and keeps it in identifiers.json.
   */
  async qemuArgs(vm: string, extra: readonly string[] = []): Promise<string[]> {
    const { paths, ids, config } = await this.withNicMacs(vm, extra, false);
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
          ensureExtraMacs(await this.macDeps(registry), paths, ids, count),
      });
    });
  }

  private async macDeps(registry: Registry) {
    return {
      registry,
      macPrefix: await checkedMacPrefix(this.home, registry, this.options.onNotice ?? (() => {})),
      random: this.options.random,
      storeLockWaitMs: this.options.storeLockWaitMs ?? 30_000,
    };
  }

  /**
   * The VM, with an extra MAC for every NIC in `extra` (after the first)
   * that has none; a NIC MAC in `extra` that another VM holds is refused.
   */
  private async withNicMacs(vm: string, extra: readonly string[], locked: boolean) {
    const usable = await this.usable(vm);
    const macs = runNicMacs(usable.config, extra);
    const registry = await this.registry();
    await assertOwnMacs(registry, vm, macs);
    const needed = extraMacsNeeded(macs);
    if (extraMacsOf(usable.ids).length >= needed) return usable;
    const draw = async (u: UsableVm): Promise<UsableVm> => ({
      ...u,
      ids: await ensureExtraMacs(await this.macDeps(registry), u.paths, u.ids, needed),
    });
    if (locked) return draw(usable);
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
        !options.dryRun,
      );
      return runVm(paths, config, ids, options, this.env);
    };
    if (options.dryRun) return go();
    return this.engine.withVm(this.paths(vm), "glint run", go);
  }

  /** The identity and config of a VM about to be used (checked against every other VM). Reads only. */
  usable(vm: string): Promise<UsableVm> {
    return readUsable(this.paths(vm), () => this.registry());
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

  /** The predefined templates and the home's (`<home>/.glint/templates/`). */
  async listTemplates(): Promise<TemplateEntry[]> {
    return listTemplates(this.home);
  }

  /** Template `name` (predefined, else the home's). */
  async getTemplate(name: string): Promise<TemplateEntry> {
    return readTemplate(this.home, name);
  }

  /** Validate and save template `name` (its base must exist); `force` replaces one. */
  async saveTemplate(
    name: string,
    data: unknown,
    options: { force?: boolean } = {},
  ): Promise<TemplateEntry> {
    return saveTemplate(this.home, name, data, options);
  }

  /** Save a template that makes VMs like `vm` (its config, not its identity). */
  async saveTemplateFromVm(
    name: string,
    vm: string,
    options: { force?: boolean; description?: string } = {},
  ): Promise<TemplateEntry> {
    await this.assertExists(vm);
    const config = await this.getConfig(vm);
    return saveTemplate(this.home, name, templateFromConfig(config, options.description), options);
  }

  /** Remove the home's template `name`; returns the file removed. */
  async removeTemplate(name: string): Promise<string> {
    return removeTemplate(this.home, name);
  }

  /**
   * Every value that the current identities of two VMs of the home hold:
   * from the registry's index (and the files of VMs it lacks), as `listing`.
   */
  async duplicates(): Promise<Duplicate[]> {
    return duplicatesOf(await this.listing());
  }
}

/** The seed's `get_uuid_manager()`. */
export function getUuidManager(options: UuidManagerOptions = {}): UuidManager {
  return new UuidManager(options);
}
