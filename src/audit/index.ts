/**
 * The tamper-evident audit log of a home (see log.ts for the file, record.ts
 * for the record and its chain, intent.ts for changes outside the journal).
 */

export { HomeAudit, type HomeAuditOptions } from "./home.js";
export {
  auditedChange,
  contentWitness,
  inodeOf,
  mtimeOf,
  recoverIntents,
  sha256OfFile,
  type Witness,
} from "./intent.js";
export {
  type AuditSink,
  appendAudit,
  appendAuditMany,
  assertAppendable,
  readAudit,
  type VerifyResult,
  verifyAudit,
} from "./log.js";
export {
  type AuditActor,
  type AuditChange,
  type AuditEntry,
  type AuditRecord,
  type AuditValue,
  canonicalJson,
  currentActor,
  diffFields,
  GENESIS,
  hashOf,
  newEntry,
  newOpId,
} from "./record.js";
