/**
 * The contract between the transaction engine and the reset steps it runs
 * (fresh UEFI NVRAM, TPM, overlay, guest files; see src/ops/reset-steps.ts).
 * A step says whether it applies to a VM, describes what it replaces, and
 * prepares its new state in temp files as a {@link PreparedChange}.
 */
import type { SystemIdentifiers } from "../identity/model.js";
import type { PolicyName, ResetStep } from "../identity/policies.js";
import type { VmConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import type { PreparedChange } from "./change.js";
import type { PendingOperation } from "./journal.js";

export interface StepContext {
  readonly paths: VmPaths;
  readonly config: VmConfig;
  /** The identity the VM will have once the operation commits. */
  readonly identifiers: SystemIdentifiers;
  /** Why the step runs, e.g. "nuke" or "reset-tpm"; labels history/ entries. */
  readonly label: string;
  /** Every step of this operation (a step may leave its work to another one). */
  readonly steps: readonly ResetStep[];
  /** Delete the old overlay instead of keeping it in history/. */
  readonly discardOverlay: boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly onProgress: (message: string) => void;
}

export interface ResetStepImpl {
  /** Whether the step does anything for a VM with this config (e.g. no TPM → no TPM reset). */
  appliesTo(config: VmConfig): boolean;
  /** What the step replaces, for confirmations: "its TPM (a new EK)". */
  describe(config: VmConfig, options: { discardOverlay: boolean }): string;
  /** Build the new state in temp files; throws with nothing changed if it cannot. */
  prepare(ctx: StepContext): Promise<PreparedChange>;
}

/** Implementations of the reset steps; a missing one counts as not applicable. */
export type ResetSteps = Partial<Record<ResetStep, ResetStepImpl>>;

export type StepOutcome = "done" | "not applicable";

/** What decides an operation's reset steps and what they write. */
export type StepsOf = Pick<PendingOperation, "identifiers" | "discardOverlay" | "skip"> & {
  policy?: PolicyName;
};
