import { existsSync } from "node:fs";
import { messageOf } from "./errors.js";
import { readEkFingerprint } from "./firmware/index.js";
import {
  renderPostInstallScript,
  createPostInstallScript as writeScriptFile,
  writeSeed,
} from "./guest/index.js";
import { requireTool } from "./host/tools.js";
import type { RandomSource } from "./identity/generate.js";
import type { SystemIdentifiers } from "./identity/model.js";
import { POLICIES, type PolicyName } from "./identity/policies.js";
import { createBatch, recoverBatches } from "./ops/batch-create.js";
import { Batcher } from "./ops/batcher.js";
import { type CreateVmOptions, createVm } from "./ops/create.js";
import { sysprepInputFor } from "./ops/disk-identity.js";
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
import { hasProvisioningOptions } from "./ops/provision.js";
import { DEFAULT_STEPS, resetOne } from "./ops/reset-steps.js";
import { type RunOptions, type RunResult, runVm, vmArgv } from "./ops/run.js";
import { applyIdentifiersToQemuCommand } from "./qemu/index.js";
import { readHomeConfig } from "./registry/config.js";
import { checkedMacPrefix } from "./registry/mac.js";
import { Registry } from "./registry/registry.js";
import { type SysprepOptions, type SysprepReport, sysprepImage } from "./sysprep/index.js";
import { Engine, type OperationOptions, type OperationResult } from "./txn/engine.js";
import type { ResetSteps } from "./txn/steps.js";
import { defaultConfig, type VmConfig } from "./vm/config.js";
import { resolveHome, storePaths, type VmPaths, vmPaths } from "./vm/layout.js";
import type { Duplicate } from "./vm/registry.js";
import { type HistoryEntry, listVmNames } from "./vm/store.js";

export type { CreateVmOptions, OperationOptions, OperationResult, VmListing };

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
}

export class UuidManager {
  readonly home: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly engine: Engine;
  private opened: Promise<Registry> | undefined;
  private batcher: Batcher<OperationResult> | undefined;

  constructor(private readonly options: UuidManagerOptions = {}) {
    this.env = options.env ?? process.env;
    this.home = resolveHome(options.home, this.env);
    const notify = options.onNotice ?? (() => {});
    this.engine = new Engine({
      home: this.home,
      env: this.env,
      steps: options.steps ?? DEFAULT_STEPS,
      random: options.random,
      storeLockWaitMs: options.storeLockWaitMs ?? 30_000,
      notify,
      registry: () => this.registry(),
      macPrefix: (registry) => checkedMacPrefix(this.home, registry, notify),
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
    for (const [vm, r] of done) out.set(vm, r);
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
    await this.engine.withVm(paths, `glint reset ${step}`, () =>
      resetOne(this.engine, paths, step, options),
    );
  }

  /** The fingerprint of the VM's TPM endorsement key, or undefined without a TPM. */
  async ekFingerprint(vm: string): Promise<string | undefined> {
    const config = await this.getConfig(vm);
    return config.tpm ? readEkFingerprint(this.paths(vm).tpm) : undefined;
  }

  /** The QEMU arguments (without the binary) for the VM. Reads only; takes no lock. */
  async qemuArgs(vm: string, extra: readonly string[] = []): Promise<string[]> {
    const { paths, ids, config } = await this.usable(vm);
    return vmArgv({ paths, config, ids, extra, env: this.env });
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
      return writeScriptFile(paths, identifiers ?? ids, { hostnameFrom: config.hostname_from });
    });
  }

  /** The post-install script's text for the current identity. */
  async renderPostInstallScript(vm: string): Promise<string> {
    const { ids, config } = await this.usable(vm);
    return renderPostInstallScript(vm, ids, { hostnameFrom: config.hostname_from });
  }

  /** Rebuild `<vm>/seed.iso` (cloud-init NoCloud, label cidata); returns its path. */
  async writeSeedIso(vm: string): Promise<string> {
    const paths = this.paths(vm);
    return this.engine.withVm(paths, "glint seed", async () => {
      const { ids, config } = await this.usable(vm);
      return writeSeed(paths, ids, { hostnameFrom: config.hostname_from, env: this.env });
    });
  }

  /**
   * Run the VM in the foreground, holding its lock for QEMU's whole life.
   * Resolves to QEMU's exit code; with `dryRun`, to the command, changing nothing.
   */
  async run(vm: string, options: RunOptions = {}): Promise<RunResult> {
    const go = async () => {
      const { paths, ids, config } = await this.usable(vm);
      return runVm(paths, config, ids, options, this.env);
    };
    if (options.dryRun) return go();
    return this.engine.withVm(this.paths(vm), "glint run", go);
  }

  private usable(vm: string): Promise<UsableVm> {
    return readUsable(this.paths(vm), () => this.registry());
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
    return this.engine.withVm(this.paths(vm), "glint sysprep", apply);
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
