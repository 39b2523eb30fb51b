/**
 * The journal of an operation in progress, `<vm>/.pending.json`.
 *
 * An operation records its new identity here under the store lock (its
 * values then count as taken), in stage `reserved`. It then prepares every
 * reset step in temp files. Just before it changes anything visible it moves
 * the journal to stage `committing`, commits the steps, renames the identity
 * into identifiers.json and deletes the journal.
 *
 * A process killed in stage `reserved` has changed nothing: the next
 * operation on the VM rolls it back (deletes the journal). One killed in stage
 * `committing` is finished by the next operation from the journal, skipping
 * the steps recorded as done — so a VM never ends up with a new identity
 * beside old firmware, overlay or seed, or the reverse.
 */
import { promises as fs } from "node:fs";
import * as z from "zod";
import { type AuditEntry, entrySchema } from "../audit/record.js";
import { GlintError } from "../errors.js";
import { identifiersToDict, parseIdentifiers, type SystemIdentifiers } from "../identity/model.js";
import type { PolicyName, ResetStep } from "../identity/policies.js";
import { writeFileAtomic } from "../vm/atomic.js";
import { readFileIfExists, stripBom } from "../vm/fsutil.js";
import type { VmPaths } from "../vm/layout.js";

export type JournalStage = "reserved" | "committing";

export interface PendingOperation {
  readonly policy: PolicyName;
  readonly stage: JournalStage;
  readonly identifiers: SystemIdentifiers;
  readonly discardOverlay: boolean;
  /** Where the identity being replaced goes in history/ (null when there is none). */
  readonly archived: string | null;
  /** Reset steps already committed (a recovery skips them). */
  readonly done: readonly ResetStep[];
  /**
   * Steps of the policy this operation leaves out (`restore --as-clone`
   * keeps the restored overlay: no `overlay` step, so `disk-identity`
   * re-identifies it). A recovery leaves them out too.
   */
  readonly skip?: readonly ResetStep[] | undefined;
  /** The process that wrote the journal. */
  readonly pid: number;
  /** The audit record the operation appends when it commits (once, by its op_id). */
  readonly audit?: AuditEntry | undefined;
}

const STEPS = ["uefi", "tpm", "overlay", "disk-identity", "guest-files"] as const;

const journalSchema = z.strictObject({
  policy: z.enum(["fresh", "disk", "base", "nuke"]),
  // Journals written before stages existed were always finished forward.
  stage: z.enum(["reserved", "committing"]).default("committing"),
  identifiers: z.record(z.string(), z.unknown()),
  discard_overlay: z.boolean(),
  archived: z.string().nullable(),
  done: z.array(z.enum(STEPS)).default([]),
  skip: z.array(z.enum(STEPS)).default([]),
  pid: z.number().int().nonnegative().default(0),
  audit: entrySchema.optional(),
});

export async function writeJournal(paths: VmPaths, op: PendingOperation): Promise<void> {
  const body = {
    policy: op.policy,
    stage: op.stage,
    identifiers: identifiersToDict(op.identifiers),
    discard_overlay: op.discardOverlay,
    archived: op.archived,
    done: op.done,
    ...(op.skip?.length ? { skip: op.skip } : {}),
    pid: op.pid,
    ...(op.audit ? { audit: op.audit } : {}),
  };
  await writeFileAtomic(paths.journal, `${JSON.stringify(body, null, 2)}\n`);
}

/** The pending operation of a VM, if any. */
export async function readJournal(paths: VmPaths): Promise<PendingOperation | undefined> {
  const raw = await readFileIfExists(paths.journal);
  if (raw === undefined) return undefined;
  let parsed: z.infer<typeof journalSchema>;
  try {
    parsed = journalSchema.parse(JSON.parse(stripBom(raw)));
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new GlintError(
      `${paths.journal}: unreadable record of an interrupted operation (${why})`,
      {
        code: "invalid-file",
        details: { vm: paths.name, file: paths.journal, reason: "journal" },
      },
    );
  }
  return {
    policy: parsed.policy,
    stage: parsed.stage,
    identifiers: parseIdentifiers(parsed.identifiers, `${paths.journal} (identifiers)`),
    discardOverlay: parsed.discard_overlay,
    archived: parsed.archived,
    done: parsed.done,
    skip: parsed.skip,
    pid: parsed.pid,
    audit: parsed.audit,
  };
}

export async function removeJournal(paths: VmPaths): Promise<void> {
  await fs.rm(paths.journal, { force: true });
}
