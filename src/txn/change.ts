/**
 * Two-phase changes for transactions: the expensive, fallible work (building
 * temp files) happens before; `commit()` makes the change visible and
 * `abort()` throws it away. Used by the UEFI reset, the TPM reset and the
 * guest files, so all three have the same state machine.
 */
import { GlintError } from "../errors.js";

/** A prepared change that can still be committed or abandoned. */
export interface PreparedChange {
  /** Make the change visible. No-op if already committed; a GlintError after `abort()`. */
  commit(): Promise<void>;
  /** Throw the prepared change away. No-op once committed or aborted. */
  abort(): Promise<void>;
}

export interface PreparedChangeSteps {
  /** What is changed, for the commit-after-abort error (e.g. "TPM reset"). */
  readonly what: string;
  /**
   * Make the change visible. The change counts as committed once this
   * resolves — or earlier, from the moment it calls `markCommitted()` (its
   * point of no return): from then on `abort()` does nothing and a repeated
   * `commit()` is a no-op even if this step failed after the mark. A failure
   * before the mark leaves the change prepared (`abort()` still cleans up).
   */
  commit(markCommitted: () => void): Promise<void>;
  /** Remove what was prepared; runs at most once, and never after a commit. */
  abort(): Promise<void>;
}

/** The prepared → committed | aborted state machine around `steps`. */
export function preparedChange(steps: PreparedChangeSteps): PreparedChange {
  let state: "prepared" | "committed" | "aborted" = "prepared";
  const markCommitted = (): void => {
    state = "committed";
  };
  return {
    async commit() {
      if (state === "committed") return;
      if (state === "aborted") {
        throw new GlintError(`${steps.what} was already aborted: commit after abort`);
      }
      await steps.commit(markCommitted);
      markCommitted();
    },
    async abort() {
      if (state !== "prepared") return;
      state = "aborted";
      await steps.abort();
    },
  };
}
