/**
 * The transaction engine: every change to a VM runs here, all-or-nothing.
 *
 * A policy (fresh, disk, base, nuke) runs in three phases:
 *   1. under the store lock: draw the new identity and record it in the VM's
 *      journal in stage `reserved` (its values now count as taken);
 *   2. prepare every reset step into temp files. If anything fails, the
 *      journal is removed and the VM is exactly as before;
 *   3. (a critical section: signals wait) move the journal to `committing`,
 *      commit the steps, archive the old identity into history/, rename the
 *      new identity into identifiers.json and delete the journal.
 * A process killed in phase 1 or 2 leaves a `reserved` journal, which the
 * next operation rolls back; one killed in phase 3 leaves a `committing`
 * journal, which the next operation finishes (see journal.ts); it says so.
 *
 * A single reset (`reset uefi`, `reset tpm`) runs the same steps, prepared
 * then committed, with no identity change.
 */
import { promises as fs } from "node:fs";
import { recoverIntents } from "../audit/intent.js";
import { GlintError, glintError, messageOf } from "../errors.js";
import type { RandomSource } from "../identity/generate.js";
import { parseIdentifiers, type SystemIdentifiers } from "../identity/model.js";
import { POLICIES, type Policy, type PolicyName, type ResetStep } from "../identity/policies.js";
import type { RegenerateOptions } from "../identity/regenerate.js";
import type { Registry } from "../registry/registry.js";
import { removeStaleTemps } from "../vm/atomic.js";
import { extraNicCount, type VmConfig } from "../vm/config.js";
import { readFileIfExists } from "../vm/fsutil.js";
import { historyPath, storePaths, type VmPaths } from "../vm/layout.js";
import { withLock } from "../vm/lock.js";
import { assertNotRunning } from "../vm/running.js";
import { assertNoForeignSymlinks } from "../vm/safety.js";
import {
  archiveFileTo,
  readConfigOrDefault,
  readIdentifiers,
  writeIdentifiers,
} from "../vm/store.js";
import { appendOperationAudit, type EngineAudit, policyEntry } from "./audit.js";
import type { PreparedChange } from "./change.js";
import { critical } from "./critical.js";
import { type PendingOperation, readJournal, removeJournal, writeJournal } from "./journal.js";
import { drawAndReserve, journalConflict, markIssued } from "./reserve.js";
import { noIdentifiers, type OperationResult, parseJson, resultOf } from "./result.js";
import type { ResetSteps, StepContext, StepOutcome } from "./steps.js";

export interface EngineOptions {
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;
  readonly steps: ResetSteps;
  readonly random?: RandomSource | undefined;
  /** How long to wait for the store-wide lock (ms). */
  readonly storeLockWaitMs: number;
  /** Told when an operation first finishes or rolls back someone else's interrupted one. */
  readonly notify: (message: string) => void;
  /** The registry of issued values (see src/registry/); opened on first use. */
  readonly registry: () => Promise<Registry>;
  /** A MAC prefix check before drawing (see src/registry/mac.ts). */
  readonly macPrefix?: (registry: Registry, prefix?: string) => Promise<string | undefined>;
  /** The audit log's writer; without it no records are written. */
  readonly audit?: EngineAudit;
}

export interface OperationOptions {
  /** `fresh`: replace an existing identity. */
  forceRegenerate?: boolean;
  /** `disk`/`nuke`: delete the old overlay instead of keeping it in history/. */
  discardOverlay?: boolean;
  /** Called before each visible step (for spinners). */
  onProgress?: (message: string) => void;
  /** Values to adopt instead of drawing (`glint libvirt import`); a held one is drawn fresh. */
  preset?: RegenerateOptions["preset"];
  /** Told of each preset value that another VM holds. */
  onPresetTaken?: RegenerateOptions["onPresetTaken"];
}

export class Engine {
  constructor(private readonly options: EngineOptions) {}

  /** The registry, opened (and the home imported) on first use. */
  registry(): Promise<Registry> {
    return this.options.registry();
  }

  /**
   * Run `fn` holding the VM's lock; a live holder, or a QEMU still running the
   * VM, gives a BusyError. First cleans up after a process that was killed
   * while it held the lock: its temp files are removed and its interrupted
   * operation is rolled back or finished (`recovered` is the finished one).
   */
  async withVm<T>(
    paths: VmPaths,
    purpose: string,
    fn: (recovered: OperationResult | undefined) => Promise<T>,
  ): Promise<T> {
    await assertNoForeignSymlinks(paths);
    return withLock(paths.lock, { purpose, vm: paths.name }, async () => {
      // Again under the lock: nothing in the VM may be a link Glint did not make.
      await assertNoForeignSymlinks(paths);
      await assertNotRunning(paths);
      await Promise.all([paths.dir, paths.shared, paths.history].map((d) => removeStaleTemps(d)));
      const recovered = await this.recover(paths);
      await recoverIntents(this.options.home, {
        waitMs: this.options.storeLockWaitMs,
        notify: this.options.notify,
      });
      await (await this.registry()).reconcile(paths.name);
      return fn(recovered);
    });
  }

  /** Roll back or finish an operation that a killed process left in the journal. */
  private async recover(paths: VmPaths): Promise<OperationResult | undefined> {
    const op = await readJournal(paths);
    if (!op) return undefined;
    const command = POLICIES[op.policy].command;
    if (op.stage === "reserved") {
      await this.release(paths, op);
      this.options.notify(
        `an interrupted \`${command}\` of "${paths.name}" had changed nothing; it was rolled back`,
      );
      return undefined;
    }
    const clash = await journalConflict(await this.registry(), paths.name, op.identifiers);
    if (clash) {
      throw glintError(
        "conflict",
        `VM "${paths.name}" has an interrupted \`${command}\` whose ${clash.field} ${clash.value} is also held by VM "${clash.vm}" (was the VM directory copied?)`,
        { vm: paths.name, file: paths.journal, reason: "journal-duplicate" },
      );
    }
    const previous = await readIdentifiers(paths).catch(() => undefined);
    try {
      await this.audit(op, true);
      const config = await readConfigOrDefault(paths);
      const prepared = await this.prepare(this.context(paths, config, op, {}), op);
      const steps = await critical(() => this.commit(paths, op, prepared));
      this.options.notify(`finished the interrupted \`${command}\` of "${paths.name}" first`);
      return resultOf(paths, op, previous, steps);
    } catch (error) {
      throw new GlintError(
        `VM "${paths.name}" has an interrupted \`${command}\` that could not be finished (${messageOf(error)})`,
        {
          code: "interrupted",
          details: {
            vm: paths.name,
            file: paths.journal,
            operation: command,
            reason: "unfinished",
          },
          cause: error,
        },
      );
    }
  }

  /** Run `policy` on a VM whose lock the caller holds. */
  async runPolicy(
    paths: VmPaths,
    policy: Policy,
    options: OperationOptions,
  ): Promise<OperationResult> {
    // Never through a symlink (see src/vm/safety.ts).
    const previousRaw = await readFileIfExists(paths.identifiers);
    let previous: SystemIdentifiers | undefined;
    if (previousRaw !== undefined) {
      try {
        previous = parseIdentifiers(parseJson(previousRaw, paths), paths.identifiers, paths.name);
      } catch (error) {
        // Only an explicit `create --force` may replace a file it cannot read.
        if (!(policy.name === "fresh" && options.forceRegenerate)) throw error;
      }
    }
    if (policy.refusesExisting && previousRaw !== undefined && !options.forceRegenerate) {
      throw glintError("conflict", `VM "${paths.name}" already has identifiers`, {
        vm: paths.name,
        reason: "has-identifiers",
      });
    }
    if (!policy.refusesExisting && previous === undefined) throw noIdentifiers(paths);
    // Everything that can fail before a change is checked first.
    const config = await readConfigOrDefault(paths);
    await fs.mkdir(paths.dir, { recursive: true });

    // Phase 1: draw, journal, then reserve in the registry (which refuses any value issued before).
    const registry = await this.registry();
    const macPrefix = await this.options.macPrefix?.(registry, config.mac_prefix ?? undefined);
    const op = await withLock(
      storePaths(this.options.home).lock,
      { purpose: "drawing identifiers", waitMs: this.options.storeLockWaitMs },
      () =>
        drawAndReserve({
          paths,
          policy,
          previous,
          registry,
          random: this.options.random,
          macPrefix,
          extraMacs: extraNicCount(config),
          preset: options.preset,
          onPresetTaken: options.onPresetTaken,
          serialFormats: config.serial_formats ?? undefined, // a template's (config.json)
          pending: (identifiers) => ({
            policy: policy.name,
            stage: "reserved",
            identifiers,
            discardOverlay: Boolean(options.discardOverlay),
            archived:
              previousRaw === undefined ? null : historyPath(paths, paths.identifiers, policy.name),
            done: [],
            pid: process.pid,
            audit:
              this.options.audit &&
              policyEntry(this.options.audit.actor, paths.name, policy.name, previous, identifiers),
          }),
        }),
    );

    // Phase 2: prepare. Phase 3: commit.
    let prepared: [ResetStep, PreparedChange][];
    try {
      prepared = await this.prepare(this.context(paths, config, op, options), op);
    } catch (error) {
      await this.release(paths, op);
      throw error;
    }
    const steps = await critical(async () => {
      const committing: PendingOperation = { ...op, stage: "committing" };
      try {
        await writeJournal(paths, committing);
        await this.audit(committing, false);
      } catch (error) {
        await Promise.allSettled(prepared.map(([, p]) => p.abort()));
        await this.release(paths, op);
        throw error;
      }
      return this.commit(paths, committing, prepared);
    });
    return resultOf(paths, op, previous, steps);
  }

  /** Append the audit record an operation's journal carries. */
  private audit(op: PendingOperation, idempotent: boolean): Promise<void> {
    return appendOperationAudit(this.options.home, this.options.audit, op.audit, {
      idempotent,
      waitMs: this.options.storeLockWaitMs,
      notify: this.options.notify,
    });
  }

  /** Run single reset steps (`reset uefi`, `reset tpm`) on a VM whose lock the caller holds. */
  async runSteps(
    paths: VmPaths,
    label: string,
    steps: readonly ResetStep[],
    options: Pick<OperationOptions, "onProgress"> = {},
  ): Promise<void> {
    const config = await readConfigOrDefault(paths);
    const identifiers = await readIdentifiers(paths);
    if (!identifiers) throw noIdentifiers(paths);
    const ctx = this.context(
      paths,
      config,
      { identifiers, discardOverlay: false },
      options,
      label,
      steps,
    );
    const prepared: PreparedChange[] = [];
    try {
      for (const step of steps) {
        const impl = this.options.steps[step];
        if (impl?.appliesTo(config)) prepared.push(await impl.prepare(ctx));
      }
    } catch (error) {
      await Promise.allSettled(prepared.map((p) => p.abort()));
      throw error;
    }
    await critical(async () => {
      for (const p of prepared) await p.commit();
    });
  }

  /** The reset steps of `policy` that apply to a VM with `config`. */
  applicableSteps(policy: Policy, config: VmConfig): ResetStep[] {
    return policy.reset.filter((s) => this.options.steps[s]?.appliesTo(config) === true);
  }

  private context(
    paths: VmPaths,
    config: VmConfig,
    op: Pick<PendingOperation, "identifiers" | "discardOverlay"> & { policy?: PolicyName },
    options: Pick<OperationOptions, "onProgress">,
    label = op.policy ?? "reset",
    steps: readonly ResetStep[] = [],
  ): StepContext {
    return {
      paths,
      config,
      identifiers: op.identifiers,
      label,
      steps: op.policy ? POLICIES[op.policy].reset : steps,
      discardOverlay: op.discardOverlay,
      env: this.options.env,
      onProgress: options.onProgress ?? (() => {}),
    };
  }

  /** Prepare every applicable, not yet committed step of `op`; on failure nothing is left. */
  private async prepare(
    ctx: StepContext,
    op: PendingOperation,
  ): Promise<[ResetStep, PreparedChange][]> {
    const prepared: [ResetStep, PreparedChange][] = [];
    try {
      for (const step of POLICIES[op.policy].reset) {
        const impl = this.options.steps[step];
        if (op.done.includes(step) || !impl?.appliesTo(ctx.config)) continue;
        prepared.push([step, await impl.prepare(ctx)]);
      }
    } catch (error) {
      await Promise.allSettled(prepared.map(([, p]) => p.abort()));
      throw error;
    }
    return prepared;
  }

  /**
   * Commit the prepared steps (recording each in the journal, so that a
   * recovery skips it), archive the old identity, write the new one and
   * delete the journal. The caller runs this as a critical section.
   */
  private async commit(
    paths: VmPaths,
    op: PendingOperation,
    prepared: [ResetStep, PreparedChange][],
  ): Promise<Partial<Record<ResetStep, StepOutcome>>> {
    const done = [...op.done];
    try {
      for (const [step, p] of prepared) {
        await p.commit();
        done.push(step);
        if (prepared.length > 1) await writeJournal(paths, { ...op, done });
      }
    } catch (error) {
      await Promise.allSettled(
        prepared.filter(([step]) => !done.includes(step)).map(([, p]) => p.abort()),
      );
      const command = POLICIES[op.policy].command;
      throw new GlintError(`${command} ${paths.name} stopped halfway (${messageOf(error)})`, {
        code: "interrupted",
        details: { vm: paths.name, operation: command, reason: "halfway" },
        cause: error,
      });
    }
    if (op.archived !== null) await archiveFileTo(paths, paths.identifiers, op.archived);
    await writeIdentifiers(paths, op.identifiers);
    await markIssued(await this.registry(), paths, op.identifiers, this.options.notify);
    // A create is finished once its identity is in place, whoever finishes it.
    if (op.policy === "fresh") await fs.rm(paths.creating, { force: true });
    await removeJournal(paths);
    const steps: Partial<Record<ResetStep, StepOutcome>> = {};
    for (const step of POLICIES[op.policy].reset) steps[step] = "not applicable";
    for (const step of done) steps[step] = "done";
    return steps;
  }

  /**
   * Drop a reserved operation: give its values back to the registry, then
   * remove its journal (a crash in between leaves the journal, and the next
   * operation releases again).
   */
  private async release(paths: VmPaths, op: PendingOperation): Promise<void> {
    const registry = await this.registry();
    await withLock(
      storePaths(this.options.home).lock,
      { purpose: "undoing", waitMs: this.options.storeLockWaitMs },
      async () => {
        // Values the VM still holds (a `disk` regeneration keeps vm_uuid, MAC
        // and machine-id) stay.
        const current = await readIdentifiers(paths).catch(() => undefined);
        await registry.release(paths.name, op.identifiers, current);
        await removeJournal(paths);
      },
    );
  }
}

export { noIdentifiers, type OperationResult };
