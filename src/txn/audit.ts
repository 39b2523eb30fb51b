/**
 * The engine's side of the audit log (src/audit/): an operation's record is
 * built when its journal is written (stage `reserved`), carried by the
 * journal, and appended in the commit phase — right after the journal moves
 * to `committing`, before the first visible change. A recovery of a
 * `committing` journal appends it again by op_id, which finds the record if
 * it was written already: every committed operation has exactly one record,
 * and a rolled-back one (stage `reserved`) has none.
 */
import { type AuditSink, appendAudit } from "../audit/log.js";
import { type AuditActor, type AuditEntry, diffFields, newEntry } from "../audit/record.js";
import { identifiersToDict, type SystemIdentifiers } from "../identity/model.js";
import type { PolicyName } from "../identity/policies.js";

/** What the engine needs to write audit records. */
export interface EngineAudit {
  /** Who runs the operations (host, user, pid, command). */
  readonly actor: AuditActor;
  /** Where records also go (the PostgreSQL registry), if anywhere. */
  readonly sink: () => Promise<AuditSink | undefined>;
}

/** The audit operation name of each policy. */
export const POLICY_OPERATION: Readonly<Record<PolicyName, string>> = {
  fresh: "create",
  disk: "regen-disk",
  base: "regen-base",
  nuke: "nuke",
};

/** The record of a policy run: every identifier that changes, old → new. */
export function policyEntry(
  actor: AuditActor,
  vm: string,
  policy: PolicyName,
  previous: SystemIdentifiers | undefined,
  identifiers: SystemIdentifiers,
): AuditEntry {
  return newEntry(
    actor,
    vm,
    POLICY_OPERATION[policy],
    diffFields(previous && identifiersToDict(previous), identifiersToDict(identifiers)),
  );
}

/** Append a journal's record (idempotently when recovering). */
export async function appendOperationAudit(
  home: string,
  audit: EngineAudit | undefined,
  entry: AuditEntry | undefined,
  options: { idempotent: boolean; waitMs: number; notify: (message: string) => void },
): Promise<void> {
  if (!audit || !entry) return;
  await appendAudit(home, entry, {
    idempotent: options.idempotent,
    waitMs: options.waitMs,
    sink: await audit.sink().catch(() => undefined),
    notify: options.notify,
  });
}
