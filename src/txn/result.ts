/** What an operation of the engine resolves to, and the engine's small helpers. */
import { existsSync } from "node:fs";
import { type GlintError, glintError } from "../errors.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { POLICIES, type PolicyName, type ResetStep } from "../identity/policies.js";
import { stripBom } from "../vm/fsutil.js";
import type { VmPaths } from "../vm/layout.js";
import { invalidJson } from "../vm/store.js";
import type { PendingOperation } from "./journal.js";
import type { StepOutcome } from "./steps.js";

export interface OperationResult {
  readonly vm: string;
  readonly policy: PolicyName;
  readonly previous: SystemIdentifiers | undefined;
  readonly identifiers: SystemIdentifiers;
  /** The history/ copy of the previous identifiers.json, if there was one. */
  readonly archived: string | undefined;
  readonly steps: Readonly<Partial<Record<ResetStep, StepOutcome>>>;
}

export function resultOf(
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
    archived: op.archived !== null && existsSync(op.archived) ? op.archived : undefined,
    steps,
  };
}

export function noIdentifiers(paths: VmPaths): GlintError {
  return glintError("not-found", `VM "${paths.name}" has no identifiers in ${paths.home}`, {
    vm: paths.name,
    reason: "no-identifiers",
  });
}

export function parseJson(raw: string, paths: VmPaths): unknown {
  try {
    return JSON.parse(stripBom(raw));
  } catch (error) {
    throw invalidJson(paths.identifiers, error, paths.name);
  }
}

/** The reset steps `policy` runs, without those the operation leaves out. */
export function activeSteps(
  policy: PolicyName,
  skip: readonly ResetStep[] | undefined,
): ResetStep[] {
  return POLICIES[policy].reset.filter((s) => !skip?.includes(s));
}
