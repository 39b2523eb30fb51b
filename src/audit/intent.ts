/**
 * Audited changes outside the transaction journal (reset, edit, rm,
 * sysprep, restore, templates): before the change, an intent file in
 * `<home>/.glint/audit-pending/<op_id>.json` holds the record to append and
 * a *witness*, a check of the files that is true exactly when the change
 * happened (each of these changes becomes visible in one rename or write).
 * After the change the record is appended and the intent removed.
 *
 * A process killed in between leaves the intent. The next audited command of
 * the home (or `glint audit`) finds it, and since its writer is gone, asks
 * the witness: the change happened → the record is appended (once: by op_id);
 * it did not → the intent is dropped. So a change never stays without its
 * record, nor a record without its change.
 */
import { createHash } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import * as z from "zod";
import { messageOf } from "../errors.js";
import { isAlive, writeFileAtomic } from "../vm/atomic.js";
import { readFileIfExists } from "../vm/fsutil.js";
import { storePaths } from "../vm/layout.js";
import { type AppendOptions, appendAudit, assertAppendable } from "./log.js";

export type AuditedOptions = AppendOptions;

import { type AuditEntry, type AuditRecord, entrySchema } from "./record.js";

/** How to tell afterwards whether the change happened. */
export type Witness =
  /** `path` no longer exists (rm). */
  | { readonly kind: "absent"; readonly path: string }
  /**
   * `path`'s content differs from `before` (sha256, null: absent), or the
   * file was replaced (its inode differs from `inode`, e.g. a reset that
   * renamed an identical copy into place). With `field`, the record gets
   * `field: {old: before, new: sha256 now}`.
   */
  | {
      readonly kind: "content";
      readonly path: string;
      readonly before: string | null;
      readonly inode?: string;
      readonly field?: string;
    }
  /** `path`'s mtime (ns) differs from `before` (a large image, sysprep). */
  | { readonly kind: "mtime"; readonly path: string; readonly before: string };

const witnessSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("absent"), path: z.string() }),
  z.strictObject({
    kind: z.literal("content"),
    path: z.string(),
    before: z.string().nullable(),
    inode: z.string().optional(),
    field: z.string().optional(),
  }),
  z.strictObject({ kind: z.literal("mtime"), path: z.string(), before: z.string() }),
]);

const intentSchema = z.strictObject({ entry: entrySchema, witness: witnessSchema });

/** sha256 of a file (null when absent); a directory or link is hashed as "other". */
export async function sha256OfFile(file: string): Promise<string | null> {
  let fh: Awaited<ReturnType<typeof fs.open>>;
  try {
    fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    return `other:${code ?? "?"}`;
  }
  try {
    if (!(await fh.stat()).isFile()) return "other";
    const hash = createHash("sha256");
    for await (const chunk of fh.createReadStream({ autoClose: false })) hash.update(chunk);
    return hash.digest("hex");
  } finally {
    await fh.close();
  }
}

/** The inode number of a file, as a string ("" when absent). */
export async function inodeOf(file: string): Promise<string> {
  const st = await fs.lstat(file, { bigint: true }).catch(() => undefined);
  return st ? String(st.ino) : "";
}

/** A witness that `file` is replaced or changed, recording its sha256 as `field`. */
export async function contentWitness(file: string, field?: string): Promise<Witness> {
  return {
    kind: "content",
    path: file,
    before: await sha256OfFile(file),
    inode: await inodeOf(file),
    ...(field ? { field } : {}),
  };
}

/** mtime of a file in ns, as a string ("" when absent). */
export async function mtimeOf(file: string): Promise<string> {
  const st = await fs.stat(file, { bigint: true }).catch(() => undefined);
  return st ? String(st.mtimeNs) : "";
}

/** Whether the change `witness` describes happened; with the record's extra change. */
async function judge(
  witness: Witness,
): Promise<{ happened: boolean; extra: AuditEntry["changes"] }> {
  if (witness.kind === "absent") {
    const st = await fs.lstat(witness.path).catch(() => undefined);
    return { happened: st === undefined, extra: {} };
  }
  if (witness.kind === "mtime") {
    return { happened: (await mtimeOf(witness.path)) !== witness.before, extra: {} };
  }
  const now = await sha256OfFile(witness.path);
  const replaced = witness.inode !== undefined && (await inodeOf(witness.path)) !== witness.inode;
  const happened = now !== witness.before || replaced;
  return {
    happened,
    extra: witness.field && happened ? { [witness.field]: { old: witness.before, new: now } } : {},
  };
}

/** Intents this process is working on (never judged by its own recovery). */
const inFlight = new Set<string>();

function intentPath(home: string, opId: string): string {
  return path.join(storePaths(home).auditPending, `${opId}.json`);
}

/**
 * Run `change` as an audited change: the intent first, then the change, then
 * the record (whether `change` threw or not, the witness decides whether a
 * record is due). Resolves to what `change` resolved to.
 */
export async function auditedChange<T>(
  home: string,
  entry: AuditEntry,
  witness: Witness,
  change: () => Promise<T>,
  options: AppendOptions = {},
): Promise<T> {
  await recoverIntents(home, options);
  await assertAppendable(home);
  const file = intentPath(home, entry.op_id);
  await fs.mkdir(path.dirname(file), { recursive: true });
  inFlight.add(entry.op_id);
  try {
    await writeFileAtomic(file, `${JSON.stringify({ entry, witness })}\n`);
    let result: T;
    try {
      result = await change();
    } catch (error) {
      await settle(home, file, entry, witness, options).catch(() => {});
      throw error;
    }
    await settle(home, file, entry, witness, options);
    return result;
  } finally {
    inFlight.delete(entry.op_id);
  }
}

/** Append the record if the change happened, then drop the intent. */
async function settle(
  home: string,
  file: string,
  entry: AuditEntry,
  witness: Witness,
  options: AppendOptions,
  idempotent = false,
): Promise<AuditRecord | undefined> {
  const { happened, extra } = await judge(witness);
  let record: AuditRecord | undefined;
  if (happened) {
    record = await appendAudit(
      home,
      { ...entry, changes: { ...entry.changes, ...extra } },
      { ...options, idempotent },
    );
  }
  await fs.rm(file, { force: true });
  return record;
}

/**
 * Finish the intents whose writer is gone (see the module comment); returns
 * the records appended. Intents of live processes are left alone.
 */
export async function recoverIntents(
  home: string,
  options: AppendOptions = {},
): Promise<AuditRecord[]> {
  const dir = storePaths(home).auditPending;
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const out: AuditRecord[] = [];
  for (const name of names.filter((n) => /^[0-9a-f]{32}\.json$/.test(n)).sort()) {
    const file = path.join(dir, name);
    const raw = await readFileIfExists(file);
    if (raw === undefined) continue;
    let intent: z.infer<typeof intentSchema>;
    try {
      intent = intentSchema.parse(JSON.parse(raw));
    } catch (error) {
      options.notify?.(`${file} is not an audit intent (${messageOf(error)}); left alone`);
      continue;
    }
    if (inFlight.has(intent.entry.op_id)) continue;
    if (intent.entry.pid !== process.pid && isAlive(intent.entry.pid)) continue;
    const record = await settle(home, file, intent.entry, intent.witness, options, true);
    if (record) {
      out.push(record);
      options.notify?.(
        `recorded the interrupted ${intent.entry.operation}${intent.entry.vm ? ` of "${intent.entry.vm}"` : ""} in the audit log`,
      );
    }
  }
  return out;
}
