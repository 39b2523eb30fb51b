/**
 * The journal (`<vm>/.pending.json`) that an operation killed by a signal
 * leaves behind, built with the engine's own writer: for tests of recovery.
 */
import type { PolicyName } from "../../src/identity/policies.js";
import { type JournalStage, type PendingOperation, writeJournal } from "../../src/txn/journal.js";
import type { VmPaths } from "../../src/vm/layout.js";
import { freshIds } from "./identity.js";

/** The pid of the process that wrote the journal: one that is not running. */
export const DEAD_PID = 999_999;

/**
 * Write into `paths` the journal of an interrupted `policy` operation in
 * `stage`, by a process that is gone. Its identity is a fresh one that no VM
 * holds unless `overrides.identifiers` is given. Resolves to the operation.
 */
export async function leaveJournal(
  paths: VmPaths,
  policy: PolicyName,
  stage: JournalStage,
  overrides: Partial<PendingOperation> = {},
): Promise<PendingOperation> {
  const op: PendingOperation = {
    policy,
    stage,
    identifiers: freshIds(),
    discardOverlay: false,
    archived: null,
    done: [],
    pid: DEAD_PID,
    ...overrides,
  };
  await writeJournal(paths, op);
  return op;
}
