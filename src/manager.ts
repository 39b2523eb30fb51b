/**
 * The seed's UUIDManager API, in TypeScript naming. Every method that changes
 * a VM holds that VM's lock for the whole operation; values are drawn under
 * the store-wide lock so that they are unique across the home directory.
 *
 * A regeneration runs in three phases so that it is all-or-nothing:
 *   1. under the store lock: draw the new identity, copy the old
 *      identifiers.json into history/, and record the operation in the VM's
 *      journal (`.pending.json`, whose values count as taken);
 *   2. prepare every reset step of the policy into temp files (fresh UEFI
 *      NVRAM, TPM state, overlay, guest files) — if one fails, everything is
 *      undone and the VM is exactly as before;
 *   3. commit the prepared steps (renames), rename the new identity into
 *      identifiers.json and delete the journal.
 * A process killed after phase 1 leaves the journal; the next operation on the
 * VM finishes the interrupted one first (see src/vm/journal.ts).
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { BusyError, GlintError, UsageError } from "./errors.js";
import {
  prepareTpmReset,
  readEkFingerprint,
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
  type RunResult,
  runVm,
  vmArgv,
} from "./lifecycle.js";
import { applyIdentifiersToQemuCommand, requireTool } from "./qemu/index.js";
import { DEFAULT_STEPS, tpmCaDir } from "./steps.js";
import { removeStaleTemps, writeFileAtomic } from "./vm/atomic.js";
import type { VmConfig } from "./vm/config.js";
import { readFileIfExists, stripBom } from "./vm/fsutil.js";
import {
  journalPath,
  type PendingOperation,
  readJournal,
  removeJournal,
  writeJournal,
} from "./vm/journal.js";
import { resolveHome, storePaths, type VmPaths, vmPaths } from "./vm/layout.js";
import { lockHolder, withLock } from "./vm/lock.js";
import { UsedValues } from "./vm/registry.js";
import { assertNoForeignSymlinks } from "./vm/safety.js";
import {
  archiveFile,
  type HistoryEntry,
  invalidJson,
  listHistory,
  listVmNames,
  readConfigOrDefault,
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

  /**
   * Run `fn` holding the VM's lock; a live holder gives a clear BusyError.
   * First cleans up after a process that was killed while it held the lock:
   * its temp files are removed and its interrupted operation is finished.
   */
  async withVm<T>(
    vm: string,
    purpose: string,
    fn: (paths: VmPaths, finished?: OperationResult) => Promise<T>,
  ): Promise<T> {
    const paths = this.paths(vm);
    await assertNoForeignSymlinks(paths);
    return withLock(paths.lock, { purpose, busyMessage: busyMessage(vm) }, async () => {
      await assertNoForeignSymlinks(paths);
      await removeStaleTemps(paths.dir);
      await removeStaleTemps(paths.shared);
      await removeStaleTemps(paths.history);
      const pending = await readJournal(paths);
      const finished = pending ? await this.finishInterrupted(paths, pending) : undefined;
      return fn(paths, finished);
    });
  }

  /** Throws a BusyError if another live process holds the VM (e.g. `glint run`). */
  async assertNotBusy(vm: string): Promise<void> {
    const holder = await lockHolder(this.paths(vm).lock);
    if (holder) throw new BusyError(busyMessage(vm)(holder));
  }

  /** Names of all VMs in the home directory (symlinked ones too: every command refuses those). */
  async listVms(): Promise<string[]> {
    return listVmNames(this.home, { includeSymlinks: true });
  }

  /** The VM's identifiers; throws if it has none. */
  async getIdentifiers(vm: string): Promise<SystemIdentifiers> {
    const paths = this.paths(vm);
    await assertNoForeignSymlinks(paths);
    const ids = await readIdentifiers(paths);
    if (!ids) {
      await assertNoPending(paths);
      throw noIdentifiers(vm, this.home);
    }
    return ids;
  }

  /** The VM's config.json (defaults if it has none). */
  async getConfig(vm: string): Promise<VmConfig> {
    const paths = this.paths(vm);
    await assertNoForeignSymlinks(paths);
    return readConfigOrDefault(paths);
  }

  /** Past identities of a VM, oldest first. */
  async history(vm: string): Promise<HistoryEntry[]> {
    const paths = this.paths(vm);
    await fs.lstat(paths.dir).catch(() => {
      throw new GlintError(`VM "${vm}" does not exist in ${this.home}`);
    });
    await assertNoForeignSymlinks(paths);
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
    return this.regenerate(vm, "fresh", options);
  }

  /** The "disk" policy: new disk-side UUIDs and vm_generation_id; keeps vm_uuid, MAC and machine_id. */
  async regenerateDiskIdentifiers(
    vm: string,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.regenerate(vm, "disk", options);
  }

  /** The "base" policy: every identifier anew (after cloning, or for a new base image). */
  async regenerateBaseIdentifiers(
    vm: string,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.regenerate(vm, "base", options);
  }

  /** The "nuke" policy: every identifier anew, and fresh UEFI, TPM and overlay. */
  async nukeAndRegenerateAll(vm: string, options: OperationOptions = {}): Promise<OperationResult> {
    return this.regenerate(vm, "nuke", options);
  }

  /** Run any policy by name. */
  async regenerate(
    vm: string,
    policy: PolicyName,
    options: OperationOptions = {},
  ): Promise<OperationResult> {
    return this.withVm(vm, POLICIES[policy].command, (paths) =>
      this.runPolicy(paths, POLICIES[policy], options),
    );
  }

  /**
   * Create a VM: its config, disks (`base`, `overlay` or a blank disk), UEFI
   * NVRAM and TPM, then fresh identifiers, post-install script and seed.iso.
   * Nothing is left behind if a step fails; a create that was killed midway
   * (config.json but no identity) is started again from scratch. With
   * `forceRegenerate` on an existing VM only the identity is replaced.
   */
  async createVm(vm: string, options: CreateVmOptions = {}): Promise<OperationResult> {
    return this.withVm(vm, POLICIES.fresh.command, async (paths, finished) => {
      const marker = creatingMarker(paths);
      if (finished?.policy === "fresh" && existsSync(marker)) {
        // This very create had been interrupted; finishing its journal completed it.
        await fs.rm(marker, { force: true });
        return finished;
      }
      if (existsSync(paths.identifiers)) {
        await fs.rm(marker, { force: true });
        if (hasProvisioningOptions(options)) throw alreadyExists(vm);
        return this.runPolicy(paths, POLICIES.fresh, options);
      }
      if (existsSync(marker)) {
        // Only a create that Glint itself started and that was killed midway is wiped.
        options.onProgress?.("removing an unfinished earlier create");
        await fs.rm(paths.dir, { recursive: true, force: true });
      } else if (existsSync(paths.dir) && (await fs.readdir(paths.dir)).length > 0) {
        // A VM directory without identifiers.json (e.g. it was deleted): keep
        // its disks and firmware, and give it a fresh identity.
        if (hasProvisioningOptions(options)) throw alreadyExists(vm);
        return this.runPolicy(paths, POLICIES.fresh, options);
      }
      const plan = await planVm(options, this.env);
      await fs.mkdir(paths.dir, { recursive: true });
      await writeFileAtomic(marker, `${process.pid}\n`);
      try {
        await provisionVm(paths, plan, this.env, options.onProgress);
        const result = await this.runPolicy(paths, POLICIES.fresh, options);
        await fs.rm(marker, { force: true });
        return result;
      } catch (error) {
        if (!existsSync(journalPath(paths)))
          await fs.rm(paths.dir, { recursive: true, force: true });
        throw error;
      }
    });
  }

  /** Replace the VM's UEFI variables (uefi-instance.fd) with a fresh copy of uefi-seed.fd; the old ones go to history/. */
  async resetUefiVariables(vm: string): Promise<void> {
    await this.withVm(vm, "glint reset uefi", async (paths) => {
      const config = await readConfigOrDefault(paths);
      if (config.firmware === "bios") {
        throw new GlintError(`VM "${vm}" uses BIOS firmware: it has no UEFI variables to reset`);
      }
      await archiveFile(paths, paths.uefiInstance, "reset-uefi");
      await resetUefiFiles(paths.uefiSeed, paths.uefiInstance);
    });
  }

  /**
   * Wipe the VM's TPM and manufacture a new one (new EK); the old state goes
   * to history/. Resolves to the new EK's fingerprint (`sha256:` of the RSA EK
   * public key).
   */
  async resetTpm(vm: string, options: Pick<OperationOptions, "onProgress"> = {}): Promise<string> {
    return this.withVm(vm, "glint reset tpm", async (paths) => {
      const config = await readConfigOrDefault(paths);
      if (!config.tpm) throw new GlintError(`VM "${vm}" has no TPM (create it with --tpm)`);
      options.onProgress?.("manufacturing a new TPM (new EK)");
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
      return readEkFingerprint(paths.tpm);
    });
  }

  /** The fingerprint of the VM's TPM endorsement key, or undefined without a TPM. */
  async ekFingerprint(vm: string): Promise<string | undefined> {
    const config = await this.getConfig(vm);
    return config.tpm ? readEkFingerprint(this.paths(vm).tpm) : undefined;
  }

  /**
   * The QEMU arguments (without the binary) that give the VM its identity,
   * firmware, TPM, disks, seed and share. Reads only; takes no lock.
   */
  async qemuArgs(vm: string, extra: readonly string[] = []): Promise<string[]> {
    const paths = this.paths(vm);
    await assertNoForeignSymlinks(paths);
    await assertNoPending(paths);
    const ids = await this.getIdentifiers(vm);
    const config = await readConfigOrDefault(paths);
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

  /**
   * Write `<vm>/shared/set_identifiers.sh` for the VM's identity (or for
   * `identifiers`, as the seed's `create_post_install_script(vm, ids)`);
   * returns its path.
   */
  async createPostInstallScript(vm: string, identifiers?: SystemIdentifiers): Promise<string> {
    return this.withVm(vm, "glint script", async (paths) => {
      const ids = identifiers ?? (await this.getIdentifiers(vm));
      const config = await readConfigOrDefault(paths);
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
      const config = await readConfigOrDefault(paths);
      return writeSeed(paths, ids, { hostnameFrom: config.hostname_from, env: this.env });
    });
  }

  /**
   * Run the VM in the foreground with `qemu-system-x86_64`, holding its lock
   * (so it cannot be regenerated or nuked meanwhile) and its swtpm sidecar.
   * Resolves to QEMU's exit code. With `dryRun`, resolves to the command
   * instead, and changes nothing.
   */
  async run(vm: string, options: RunOptions = {}): Promise<RunResult> {
    const go = async (paths: VmPaths) => {
      const ids = await this.getIdentifiers(vm);
      const config = await readConfigOrDefault(paths);
      return runVm(paths, config, ids, options, this.env);
    };
    if (options.dryRun) {
      await assertNoForeignSymlinks(this.paths(vm));
      await assertNoPending(this.paths(vm));
      return go(this.paths(vm));
    }
    return this.withVm(vm, "glint run", go);
  }

  /** The body of every policy. The caller holds the VM lock. */
  private async runPolicy(
    paths: VmPaths,
    policy: Policy,
    options: OperationOptions,
  ): Promise<OperationResult> {
    const previousRaw = await readFileIfExists(paths.identifiers);
    let previous: SystemIdentifiers | undefined;
    if (previousRaw !== undefined) {
      try {
        previous = parseIdentifiers(
          parseJson(previousRaw, paths.identifiers),
          paths.identifiers,
          paths.name,
        );
      } catch (error) {
        // Only an explicit `create --force` may replace a file it cannot read.
        if (!(policy.name === "fresh" && options.forceRegenerate)) throw error;
      }
    }
    if (policy.refusesExisting && previousRaw !== undefined && !options.forceRegenerate) {
      throw new GlintError(
        `VM "${paths.name}" already has identifiers; use \`glint create ${paths.name} --force\` to replace them (the old ones are kept in history/)`,
      );
    }
    if (!policy.refusesExisting && previous === undefined)
      throw noIdentifiers(paths.name, this.home);

    // Phase 1: draw unique values and record the operation, under the store lock.
    const op = await withLock(
      storePaths(this.home).lock,
      { purpose: "drawing identifiers", waitMs: this.storeLockWaitMs },
      async (): Promise<PendingOperation> => {
        await this.used.refresh();
        const identifiers = applyPolicy(
          previous,
          policy,
          this.used,
          this.random ? { random: this.random } : {},
        );
        const archived =
          previousRaw === undefined
            ? null
            : ((await archiveFile(paths, paths.identifiers, policy.name)) ?? null);
        const pending: PendingOperation = {
          policy: policy.name,
          identifiers,
          discardOverlay: Boolean(options.discardOverlay),
          archived,
          done: [],
        };
        await writeJournal(paths, pending);
        await this.used.commit(paths.name, identifiers);
        return pending;
      },
    );

    // Phases 2 and 3.
    let steps: Partial<Record<ResetStep, StepOutcome>>;
    try {
      steps = await this.applySteps(paths, op, previous, options);
    } catch (error) {
      if (error instanceof PrepareError) await this.undo(paths, op);
      throw error instanceof PrepareError ? error.cause : error;
    }
    return resultOf(paths, op, previous, steps);
  }

  /**
   * Prepare every reset step of `op`'s policy (throwing a PrepareError, with
   * nothing changed, if one fails), commit them all, then write the identity
   * and delete the journal.
   */
  private async applySteps(
    paths: VmPaths,
    op: PendingOperation,
    previous: SystemIdentifiers | undefined,
    options: OperationOptions,
  ): Promise<Partial<Record<ResetStep, StepOutcome>>> {
    const policy = POLICIES[op.policy];
    const ctx: StepContext = {
      paths,
      config: await readConfigOrDefault(paths),
      identifiers: op.identifiers,
      previous,
      policy,
      options: { ...options, discardOverlay: op.discardOverlay },
      env: this.env,
    };
    const prepared: [ResetStep, PreparedStep][] = [];
    const steps: Partial<Record<ResetStep, StepOutcome>> = {};
    try {
      for (const step of policy.reset) {
        if (op.done.includes(step)) {
          steps[step] = "done"; // committed before an interruption
          continue;
        }
        const p = await this.steps[step]?.(ctx);
        steps[step] = p ? "done" : "not applicable";
        if (p) prepared.push([step, p]);
      }
    } catch (error) {
      await Promise.allSettled(prepared.map(([, p]) => p.abort()));
      throw new PrepareError(error);
    }
    const done = [...op.done];
    try {
      for (const [step, p] of prepared) {
        await p.commit();
        done.push(step);
        // Record progress, so that a recovery does not redo (and re-archive) this step.
        if (prepared.length > 1) await writeJournal(paths, { ...op, done });
      }
    } catch (error) {
      await Promise.allSettled(
        prepared.filter(([step]) => !done.includes(step)).map(([, p]) => p.abort()),
      );
      const why = error instanceof Error ? error.message : String(error);
      throw new GlintError(
        `${policy.command} ${paths.name} stopped halfway (${why}); the next glint command on "${paths.name}" finishes it`,
      );
    }
    await writeIdentifiers(paths, op.identifiers);
    await removeJournal(paths);
    return steps;
  }

  /** Undo phase 1 after a failed preparation: the VM is exactly as before. */
  private async undo(paths: VmPaths, op: PendingOperation): Promise<void> {
    await withLock(
      storePaths(this.home).lock,
      { purpose: "undoing", waitMs: this.storeLockWaitMs },
      async () => {
        await removeJournal(paths);
        if (op.archived) await fs.rm(op.archived, { force: true });
        // Drop the values drawn for op, and hold the previous ones again (a `disk`
        // regeneration's op shares vm_uuid, MAC and machine-id with them).
        await this.used.commit(
          paths.name,
          await readIdentifiers(paths).catch(() => undefined),
          op.identifiers,
        );
      },
    );
  }

  /** Finish an operation that a killed process left in the journal. */
  private async finishInterrupted(paths: VmPaths, op: PendingOperation): Promise<OperationResult> {
    const previous = await readIdentifiers(paths).catch(() => undefined);
    try {
      return resultOf(paths, op, previous, await this.applySteps(paths, op, previous, {}));
    } catch (error) {
      const why = error instanceof PrepareError ? error.cause : error;
      const msg = why instanceof Error ? why.message : String(why);
      throw new GlintError(
        `VM "${paths.name}" has an interrupted ${POLICIES[op.policy].command} that could not be finished (${msg}); fix that and run the command again, or delete ${journalPath(paths)} to keep the current identity`,
      );
    }
  }
}

function resultOf(
  paths: VmPaths,
  op: PendingOperation,
  previous: SystemIdentifiers | undefined,
  steps: Partial<Record<ResetStep, StepOutcome>>,
): OperationResult {
  return {
    vm: paths.name,
    policy: op.policy,
    previous,
    identifiers: op.identifiers,
    archived: op.archived ?? undefined,
    steps,
  };
}

/** A reset step failed to prepare; nothing was committed. */
class PrepareError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

function busyMessage(vm: string): (holder: { pid: number; purpose: string }) => string {
  return (h) =>
    `VM "${vm}" is busy: process ${h.pid} holds it for "${h.purpose}"; wait for it to finish (or stop it) and try again`;
}

/**
 * Refuse to describe a VM whose last operation was interrupted: its files are
 * between two identities until a changing command finishes the operation.
 */
async function assertNoPending(paths: VmPaths): Promise<void> {
  if (!existsSync(journalPath(paths))) return;
  const op = await readJournal(paths);
  const command = op ? POLICIES[op.policy].command : "operation";
  throw new GlintError(
    `VM "${paths.name}" has an interrupted ${command}; run \`${op?.policy === "fresh" ? `glint create ${paths.name}` : `glint script ${paths.name}`}\` (or any command that changes the VM) to finish it first`,
  );
}

/** Written when a create starts and removed when it is done: marks a half-created VM. */
function creatingMarker(paths: VmPaths): string {
  return path.join(paths.dir, ".creating");
}

function alreadyExists(vm: string): UsageError {
  return new UsageError(
    `VM "${vm}" already exists; disk and firmware options only apply to a new VM (use another name, or \`glint nuke ${vm}\` to reset it)`,
  );
}

function noIdentifiers(vm: string, home: string): GlintError {
  return new GlintError(
    `VM "${vm}" has no identifiers in ${home}: create it with \`glint create ${vm}\``,
  );
}

function parseJson(raw: string, file: string): unknown {
  try {
    return JSON.parse(stripBom(raw));
  } catch (error) {
    throw invalidJson(file, error);
  }
}

/** The seed's `get_uuid_manager()`. */
export function getUuidManager(options: UuidManagerOptions = {}): UuidManager {
  return new UuidManager(options);
}

export { BusyError };
