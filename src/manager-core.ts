/**
 * The core of the UuidManager facade (src/manager.ts): its options, the
 * registry, paths, and everything that reads a VM or the home.
 */
import { existsSync } from "node:fs";
import { currentActor, HomeAudit } from "./audit/index.js";
import { messageOf } from "./errors.js";
import { readEkFingerprint } from "./firmware/index.js";
import type { RandomSource } from "./identity/generate.js";
import type { SystemIdentifiers } from "./identity/model.js";
import { POLICIES } from "./identity/policies.js";
import { recoverBatches } from "./ops/batch-create.js";
import { BatchedCreates } from "./ops/batched-creates.js";
import type { CreateVmOptions } from "./ops/create.js";
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
import { DEFAULT_STEPS } from "./ops/reset-steps.js";
import { templateFromConfig } from "./ops/template.js";
import { readHomeConfig } from "./registry/config.js";
import { checkedMacPrefix } from "./registry/mac.js";
import { Registry } from "./registry/registry.js";
import {
  listTemplates,
  readTemplate,
  removeTemplate,
  saveTemplate,
  type TemplateEntry,
} from "./templates/index.js";
import { Engine, type OperationResult } from "./txn/engine.js";
import type { ResetSteps } from "./txn/steps.js";
import { defaultConfig, type VmConfig } from "./vm/config.js";
import {
  type ArchivedFile,
  type HistoryGeneration,
  historyGenerations,
  pruneHistory,
} from "./vm/history.js";
import { resolveHome, storePaths, type VmPaths, vmPaths } from "./vm/layout.js";
import type { Duplicate } from "./vm/registry.js";
import { type HistoryEntry, listVmNames } from "./vm/store.js";

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

/** What every UuidManager holds, and the reads (see UuidManager for the operations). */
export abstract class ManagerCore {
  /** Create a VM (see UuidManager.createVm). */
  abstract createVm(vm: string, options?: CreateVmOptions): Promise<OperationResult>;

  readonly home: string;

  protected readonly env: NodeJS.ProcessEnv;

  /** The home's audit log; every state change appends to it (src/audit/). */
  readonly audit: HomeAudit;
  protected readonly engine: Engine;
  protected opened: Promise<Registry> | undefined;
  protected readonly batches: BatchedCreates;

  constructor(protected readonly options: UuidManagerOptions = {}) {
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
    this.batches = new BatchedCreates({
      home: this.home,
      env: this.env,
      random: options.random,
      storeLockWaitMs: options.storeLockWaitMs ?? 30_000,
      registry: () => this.registry(),
      macPrefix: (registry) => checkedMacPrefix(this.home, registry, notify),
      audit: this.audit,
      paths: (vm) => this.paths(vm),
      createVm: (vm, o) => this.createVm(vm, o),
      freshSteps: () => this.engine.applicableSteps(POLICIES.fresh, defaultConfig()),
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

  /** The fingerprint of the VM's TPM endorsement key, or undefined without a TPM. */
  async ekFingerprint(vm: string): Promise<string | undefined> {
    const config = await this.getConfig(vm);
    return config.tpm ? readEkFingerprint(this.paths(vm).tpm) : undefined;
  }

  /**
   * What drawing a VM's extra MACs needs: the VM's own MAC prefix (from its
   * template, `config.mac_prefix`) when it has one, else the home's, checked
   * for exhaustion (and the 50% warning) under that prefix.
   */
  protected async macDeps(registry: Registry, vmPrefix: string | null | undefined) {
    return {
      registry,
      macPrefix: await checkedMacPrefix(
        this.home,
        registry,
        this.options.onNotice ?? (() => {}),
        vmPrefix ?? undefined,
      ),
      random: this.options.random,
      storeLockWaitMs: this.options.storeLockWaitMs ?? 30_000,
    };
  }

  /** The identity and config of a VM about to be used (checked against every other VM). Reads only. */
  usable(vm: string): Promise<UsableVm> {
    return readUsable(this.paths(vm), () => this.registry());
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
