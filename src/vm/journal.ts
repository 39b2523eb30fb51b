/**
 * The pending-operation journal, `<vm>/.pending.json`.
 *
 * A regeneration first writes the new identity here (phase 1), then prepares
 * and commits its reset steps, and only then renames the identity into
 * identifiers.json and deletes the journal. A process killed in between
 * leaves the journal behind; the next operation on the VM (which holds its
 * lock) finishes the interrupted one from it — every reset step is "make it
 * fresh", so running them again is safe — and so the VM never ends up with a
 * new identity beside old firmware, overlay or seed, or the reverse.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import * as z from "zod";
import { GlintError } from "../errors.js";
import { identifiersToDict, parseIdentifiers, type SystemIdentifiers } from "../identity/model.js";
import type { PolicyName, ResetStep } from "../identity/policies.js";
import { writeFileAtomic } from "./atomic.js";
import { readFileIfExists } from "./fsutil.js";
import type { VmPaths } from "./layout.js";

export interface PendingOperation {
  readonly policy: PolicyName;
  readonly identifiers: SystemIdentifiers;
  readonly discardOverlay: boolean;
  /** The history/ copy of the identity being replaced, if any. */
  readonly archived: string | null;
  /** Reset steps already committed (a recovery skips them). */
  readonly done: readonly ResetStep[];
}

const journalSchema = z.strictObject({
  policy: z.enum(["fresh", "disk", "base", "nuke"]),
  identifiers: z.record(z.string(), z.unknown()),
  discard_overlay: z.boolean(),
  archived: z.string().nullable(),
  done: z.array(z.enum(["uefi", "tpm", "overlay", "guest-files"])).default([]),
});

export function journalPath(paths: VmPaths): string {
  return path.join(paths.dir, ".pending.json");
}

export async function writeJournal(paths: VmPaths, op: PendingOperation): Promise<void> {
  await fs.mkdir(paths.dir, { recursive: true });
  const body = {
    policy: op.policy,
    identifiers: identifiersToDict(op.identifiers),
    discard_overlay: op.discardOverlay,
    archived: op.archived,
    done: op.done,
  };
  await writeFileAtomic(journalPath(paths), `${JSON.stringify(body, null, 2)}\n`);
}

/** The interrupted operation of a VM, if any. */
export async function readJournal(paths: VmPaths): Promise<PendingOperation | undefined> {
  const file = journalPath(paths);
  const raw = await readFileIfExists(file);
  if (raw === undefined) return undefined;
  let parsed: z.infer<typeof journalSchema>;
  try {
    parsed = journalSchema.parse(JSON.parse(raw));
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new GlintError(
      `${file}: unreadable record of an interrupted operation (${why}); delete it to keep the current identity`,
    );
  }
  return {
    policy: parsed.policy,
    identifiers: parseIdentifiers(parsed.identifiers, `${file} (identifiers)`),
    discardOverlay: parsed.discard_overlay,
    archived: parsed.archived,
    done: parsed.done,
  };
}

/** The identifier values of a journal, read leniently (for the uniqueness scan). */
export async function journalValues(dir: string): Promise<unknown> {
  try {
    const data = JSON.parse(await fs.readFile(path.join(dir, ".pending.json"), "utf8")) as {
      identifiers?: unknown;
    };
    return data.identifiers;
  } catch {
    return undefined;
  }
}

export async function removeJournal(paths: VmPaths): Promise<void> {
  await fs.rm(journalPath(paths), { force: true });
}
