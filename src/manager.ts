/**
 * The seed's UUIDManager API, in TypeScript naming. Every method that touches
 * a VM holds that VM's lock for the whole operation; values are drawn under
 * the store-wide lock so that they are unique across the home directory.
 *
 * A regeneration runs in three phases so that it is all-or-nothing:
 *   1. draw and write the new identity (the old identifiers.json is first
 *      copied into history/),
 *   2. prepare every reset step of the policy into temp files (fresh UEFI
 *      NVRAM, TPM state, overlay, guest files) — on failure the old identity is
 *      restored and nothing else has changed,
 *   3. commit the prepared steps (renames).
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { BusyError, GlintError, UsageError } from "./errors.js";
import {
  prepareTpmReset,
  resetUefiVariables as resetUefiFiles,
  TPM2_PERMALL,
} from "./firmware/index.js";
import {
  renderPostInstallScript,
  createPostInstallScript as writeScriptFile,
  writeSeed,
} from "./guest/index.js";
import type { RandomSource } from "./identity/generate.js";
import { parseIdentifiers, type SystemIdentifiers } from "./identity/model.js";
import { POLICIES, type Policy, type PolicyName, type ResetStep } from "./identity/policies.js";
import { applyPolicy } from "./identity/regenerate.js";
import {
  type DiskAndFirmwareOptions,
  hasProvisioningOptions,
  planVm,
  provisionVm,
  type RunOptions,
  runVm,
  vmArgv,
} from "./lifecycle.js";
import { applyIdentifiersToQemuCommand, requireTool } from "./qemu/index.js";
import { DEFAULT_STEPS, tpmCaDir } from "./steps.js";
import { removeStaleTemps, writeFileAtomic } from "./vm/atomic.js";
import { defaultConfig, type VmConfig } from "./vm/config.js";
import { resolveHome, storePaths, type VmPaths, vmPaths } from "./vm/layout.js";
import { withLock } from "./vm/lock.js";
import { UsedValues } from "./vm/registry.js";
import {
  archiveFile,
  type HistoryEntry,
  listHistory,
  listVmNames,
  readConfig,
  readIdentifiers,
  writeIdentifiers,
} from "./vm/store.js";

/** A reset step prepared into temp files, ready to be swapped in. */
export interface PreparedStep {
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface StepContext {
  readonly paths: VmPaths;
  readonly config: VmConfig;
  readonly identifiers: SystemIdentifiers;
  readonly previous: SystemIdentifiers | undefined;
  readonly policy: Policy;
  readonly options: OperationOptions;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * Prepares one reset step. Returns `undefined` when the step does not apply
 * to this VM (no overlay, no TPM, BIOS firmware, …).
 */
export type StepPreparer = (ctx: StepContext) => Promise<PreparedStep | undefined>;

export type StepPreparers = Partial<Record<ResetStep, StepPreparer>>;

export interface UuidManagerOptions {
  /** VM home; defaults to `$GLINT_HOME` or `./vms_linux`. */
  home?: string;
  /** Injected randomness for tests; defaults to `crypto.randomBytes`. */
  random?: RandomSource;
  env?: NodeJS.ProcessEnv;
  /** Implementations of the policies' reset steps. */
  steps?: StepPreparers;
  /** How long to wait for the store-wide lock (ms). */
  storeLockWaitMs?: number;
}

export interface CreateVmOptions extends OperationOptions, DiskAndFirmwareOptions {}

export interface OperationOptions {
  /** `fresh`: replace an existing identity. */
  forceRegenerate?: boolean;
  /** `disk`/`nuke`: delete the old overlay instead of keeping it in history/. */
  discardOverlay?: boolean;
  /** Called before and after each visible step (for spinners). */
  onProgress?: (message: string) => void;
}

export type StepOutcome = "done" | "not applicable";

export interface OperationResult {
  readonly vm: string;
  readonly policy: PolicyName;
  readonly previous: SystemIdentifiers | undefined;
  readonly identifiers: SystemIdentifiers;
  /** The history/ copy of the previous identifiers.json, if there was one. */
  readonly archived: string | undefined;
  readonly steps: Readonly<Partial<Record<ResetStep, StepOutcome>>>;
}

export class UuidManager {
  readonly home: string;
  private readonly random: RandomSource | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly steps: StepPreparers;
  private readonly used: UsedValues;
  private readonly storeLockWaitMs: number;

  constructor(options: UuidManagerOptions = {}) {
    this.env = options.env ?? process.env;
    this.home = resolveHome(options.home, this.env);
    this.random = options.random;
    this.steps = options.steps ?? DEFAULT_STEPS;
    this.used = new UsedValues(this.home);
    this.storeLockWaitMs = options.storeLockWaitMs ?? 120_000;
  }

  /** Paths of a VM; throws a UsageError for an invalid name. */
  paths(vm: string): VmPaths {
    return vmPaths(this.home, vm);
  }

  /** Run `fn` holding the VM's lock; a live holder gives a clear BusyError. */
  async withVm<T>(vm: string, purpose: string, fn: (paths: VmPaths) => Promise<T>): Promise<T> {
    const paths = this.paths(vm);
    return withLock(
      paths.lock,
      {
        purpose,
        busyMessage: (h) =>
          `VM "${vm}" is busy: process ${h.pid} holds it for "${h.purpose}"; wait for it to finish (or stop it) and try again`,
      },
      async () => {
        // Temp files of a writer that was killed while it held this lock.
        await removeStaleTemps(paths.dir);
        await removeStaleTemps(paths.shared);
        return fn(paths);
      },
    );
  }

  /** Names of all VMs in the home directory. */
  async listVms(): Promise<string[]> {
    return listVmNames(this.home);
  }

  /** The VM's identifiers; throws if it has none. */
  async getIdentifiers(vm: string): Promise<SystemIdentifiers> {
    const paths = this.paths(vm);
    const ids = await readIdentifiers(paths);
    if (!ids)
      throw new GlintError(
        `VM "${vm}" has no identifiers in ${this.home}: create it with \`glint create ${vm}\``,
      );
    return ids;
  }

  /** The VM's config.json (defaults if it has none). */
  async getConfig(vm: string): Promise<VmConfig> {
    return (await readConfig(this.paths(vm))) ?? defaultConfig();
  }

  /** Past identities of a VM, oldest first. */
  async history(vm: string): Promise<HistoryEntry[]> {
    const paths = this.paths(vm);
    await fs.access(paths.dir).catch(() => {
      throw new GlintError(`VM "${vm}" does not exist in ${this.home}`);
    });
    return listHistory(paths);
  }

  /**
   * Fresh identifiers for `vm` (the "fresh" policy). Refuses if the VM already
   * has identifiers unless `forceRegenerate`; the replaced file (even a
   * corrupt one) is kept in history/.
   */
  async generateFreshIdentifiers(
    vm: string,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.withVm(vm, "glint create", (paths) =>
      this.runPolicy(paths, POLICIES.fresh, options),
    );
  }

  /** The "disk" policy: new disk-side UUIDs and vm_generation_id; keeps vm_uuid, MAC and machine_id. */
  async regenerateDiskIdentifiers(
    vm: string,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.withVm(vm, "glint regen disk", (paths) =>
      this.runPolicy(paths, POLICIES.disk, options),
    );
  }

  /** The "base" policy: every identifier anew (after cloning, or for a new base image). */
  async regenerateBaseIdentifiers(
    vm: string,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.withVm(vm, "glint regen base", (paths) =>
      this.runPolicy(paths, POLICIES.base, options),
    );
  }

  /** The "nuke" policy: every identifier anew, and fresh UEFI, TPM and overlay. */
  async nukeAndRegenerateAll(vm: string, options: OperationOptions = {}): Promise<OperationResult> {
    return this.withVm(vm, "glint nuke", (paths) => this.runPolicy(paths, POLICIES.nuke, options));
  }

  /** Run any policy by name. */
  async regenerate(
    vm: string,
    policy: PolicyName,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.withVm(
      vm,
      `glint ${policy === "fresh" ? "create" : policy === "nuke" ? "nuke" : `regen ${policy}`}`,
      (paths) => this.runPolicy(paths, POLICIES[policy], options),
    );
  }

  /**
   * Create a VM: its config, disks (`base`, `overlay` or a blank disk), UEFI
   * NVRAM and TPM, then fresh identifiers, post-install script and seed.iso.
   * Nothing is left behind if a step fails. With `forceRegenerate` on an
   * existing VM only the identity is replaced.
   */
  async createVm(vm: string, options: CreateVmOptions = {}): Promise<OperationResult> {
    return this.withVm(vm, "glint create", async (paths) => {
      const exists = existsSync(paths.identifiers) || existsSync(paths.config);
      if (exists && hasProvisioningOptions(options)) {
        throw new UsageError(
          `VM "${vm}" already exists; disk and firmware options only apply to a new VM (use another name, or \`glint nuke ${vm}\` to reset it)`,
        );
      }
      if (existsSync(paths.identifiers) && !options.forceRegenerate) {
        return this.runPolicy(paths, POLICIES.fresh, options);
      }
      if (exists) return this.runPolicy(paths, POLICIES.fresh, options);
      const plan = await planVm(options, this.env);
      const created = !existsSync(paths.dir);
      try {
        await provisionVm(paths, plan, this.env, options.onProgress);
        return await this.runPolicy(paths, POLICIES.fresh, options);
      } catch (error) {
        if (created) await fs.rm(paths.dir, { recursive: true, force: true });
        throw error;
      }
    });
  }

  /** Replace the VM's UEFI variables (uefi-instance.fd) with a fresh copy of uefi-seed.fd; the old ones go to history/. */
  async resetUefiVariables(vm: string): Promise<void> {
    await this.withVm(vm, "glint reset uefi", async (paths) => {
      const config = (await readConfig(paths)) ?? defaultConfig();
      if (config.firmware === "bios") {
        throw new GlintError(`VM "${vm}" uses BIOS firmware: it has no UEFI variables to reset`);
      }
      await archiveFile(paths, paths.uefiInstance, "reset-uefi");
      await resetUefiFiles(paths.uefiSeed, paths.uefiInstance);
    });
  }

  /** Wipe the VM's TPM and manufacture a new one (new EK); the old state goes to history/. */
  async resetTpm(vm: string): Promise<void> {
    await this.withVm(vm, "glint reset tpm", async (paths) => {
      const config = (await readConfig(paths)) ?? defaultConfig();
      if (!config.tpm) throw new GlintError(`VM "${vm}" has no TPM (create it with --tpm)`);
      const prepared = await prepareTpmReset(paths.tpm, {
        vmName: vm,
        caDir: tpmCaDir(this.home),
        env: this.env,
      });
      try {
        await archiveFile(paths, path.join(paths.tpm, TPM2_PERMALL), "reset-tpm");
      } catch (error) {
        await prepared.abort();
        throw error;
      }
      await prepared.commit();
    });
  }

  /** The QEMU arguments (without the binary) that give the VM its identity, firmware, TPM and disks. */
  async qemuArgs(vm: string, extra: readonly string[] = []): Promise<string[]> {
    const paths = this.paths(vm);
    const ids = await this.getIdentifiers(vm);
    const config = await this.getConfig(vm);
    return vmArgv({ paths, config, ids, extra, env: this.env });
  }

  /** The whole QEMU command line, binary first. */
  async qemuCommand(vm: string, extra: readonly string[] = []): Promise<string[]> {
    const qemu = await requireTool("qemu-system-x86_64", this.env);
    return [qemu, ...(await this.qemuArgs(vm, extra))];
  }

  /** The seed's `apply_identifiers_to_qemu_command`: idempotent, replaces identity options already present. */
  applyIdentifiersToQemuCommand(
    baseArgv: readonly string[],
    identifiers: SystemIdentifiers,
  ): string[] {
    return applyIdentifiersToQemuCommand(baseArgv, identifiers);
  }

  /** Write `<vm>/shared/set_identifiers.sh` for the current identity; returns its path. */
  async createPostInstallScript(vm: string): Promise<string> {
    return this.withVm(vm, "glint script", async (paths) => {
      const ids = await this.getIdentifiers(vm);
      const config = (await readConfig(paths)) ?? defaultConfig();
      return writeScriptFile(paths, ids, { hostnameFrom: config.hostname_from });
    });
  }

  /** The post-install script's text for the current identity. */
  async renderPostInstallScript(vm: string): Promise<string> {
    const ids = await this.getIdentifiers(vm);
    const config = await this.getConfig(vm);
    return renderPostInstallScript(vm, ids, { hostnameFrom: config.hostname_from });
  }

  /** Rebuild `<vm>/seed.iso` (cloud-init NoCloud, label cidata); returns its path. */
  async writeSeedIso(vm: string): Promise<string> {
    return this.withVm(vm, "glint seed", async (paths) => {
      const ids = await this.getIdentifiers(vm);
      const config = (await readConfig(paths)) ?? defaultConfig();
      return writeSeed(paths, ids, { hostnameFrom: config.hostname_from });
    });
  }

  /**
   * Run the VM in the foreground with `qemu-system-x86_64`, holding its lock
   * (so it cannot be regenerated or nuked meanwhile) and its swtpm sidecar.
   * Resolves to QEMU's exit code; with `dryRun`, to the command instead.
   */
  async run(vm: string, options: RunOptions = {}): Promise<{ argv: string[]; exitCode: number }> {
    return this.withVm(vm, "glint run", async (paths) => {
      const ids = await this.getIdentifiers(vm);
      const config = (await readConfig(paths)) ?? defaultConfig();
      return runVm(paths, config, ids, options, this.env);
    });
  }

  /**
   * The body of every policy. The caller holds the VM lock.
   * @internal exported for the CLI's create flow, which adds disks first.
   */
  async runPolicy(
    paths: VmPaths,
    policy: Policy,
    options: OperationOptions,
  ): Promise<OperationResult> {
    let previous: SystemIdentifiers | undefined;
    let previousRaw: string | undefined;
    try {
      previousRaw = await fs.readFile(paths.identifiers, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    if (previousRaw !== undefined) {
      try {
        previous = parseIdentifiers(JSON.parse(previousRaw), paths.identifiers);
      } catch (error) {
        // Only an explicit `create --force` may replace a file it cannot read.
        if (!(policy.name === "fresh" && options.forceRegenerate)) {
          if (error instanceof SyntaxError) {
            throw new GlintError(
              `${paths.identifiers}: not valid JSON (${error.message}); fix it, or replace the identity with \`glint create ${paths.name} --force\` (the old file is kept in history/)`,
            );
          }
          throw error;
        }
      }
    }
    if (policy.refusesExisting && previousRaw !== undefined && !options.forceRegenerate) {
      throw new GlintError(
        `VM "${paths.name}" already has identifiers; use \`glint create ${paths.name} --force\` to replace them (the old ones are kept in history/)`,
      );
    }
    if (!policy.refusesExisting && previous === undefined) {
      throw new GlintError(
        `VM "${paths.name}" has no identifiers in ${this.home}: create it with \`glint create ${paths.name}\``,
      );
    }
    const config = (await readConfig(paths)) ?? defaultConfig();

    // Phase 1: draw unique values and write them, under the store lock.
    const store = storePaths(this.home);
    let archived: string | undefined;
    const identifiers = await withLock(
      store.lock,
      { purpose: "drawing identifiers", waitMs: this.storeLockWaitMs },
      async () => {
        await this.used.refresh();
        const next = applyPolicy(
          previous,
          policy,
          this.used,
          this.random ? { random: this.random } : {},
        );
        if (previousRaw !== undefined)
          archived = await archiveFile(paths, paths.identifiers, policy.name);
        await writeIdentifiers(paths, next);
        await this.used.commit(paths.name, next, previous);
        return next;
      },
    );

    // Phase 2: prepare reset steps; undo phase 1 if one fails.
    const ctx: StepContext = {
      paths,
      config,
      identifiers,
      previous,
      policy,
      options,
      env: this.env,
    };
    const prepared: [ResetStep, PreparedStep][] = [];
    const steps: Partial<Record<ResetStep, StepOutcome>> = {};
    try {
      for (const step of policy.reset) {
        const preparer = this.steps[step];
        const p = preparer ? await preparer(ctx) : undefined;
        steps[step] = p ? "done" : "not applicable";
        if (p) prepared.push([step, p]);
      }
    } catch (error) {
      await Promise.allSettled(prepared.map(([, p]) => p.abort()));
      await this.restore(paths, previousRaw, identifiers, previous);
      throw error;
    }
    // Phase 3: commit.
    for (const [, p] of prepared) await p.commit();
    return { vm: paths.name, policy: policy.name, previous, identifiers, archived, steps };
  }

  private async restore(
    paths: VmPaths,
    previousRaw: string | undefined,
    written: SystemIdentifiers,
    previous: SystemIdentifiers | undefined,
  ): Promise<void> {
    await withLock(
      storePaths(this.home).lock,
      { purpose: "restoring identifiers", waitMs: this.storeLockWaitMs },
      async () => {
        if (previousRaw === undefined) await fs.rm(paths.identifiers, { force: true });
        else await writeFileAtomic(paths.identifiers, previousRaw);
        if (previous) await this.used.commit(paths.name, previous, written);
        else await this.used.refresh();
      },
    );
  }
}

/** The seed's `get_uuid_manager()`. */
export function getUuidManager(options: UuidManagerOptions = {}): UuidManager {
  return new UuidManager(options);
}

export { BusyError };
