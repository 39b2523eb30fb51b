/**
 * The audit log of a home, `<home>/.glint/audit.jsonl`: one canonical-JSON
 * record a line, hash-chained (see record.ts), appended with fsync under the
 * home-wide audit lock (`.glint/audit.lock`).
 *
 * `.glint/audit.head` holds the last record's seq and hash, rewritten
 * atomically after each append, so that deleting records at the end
 * (truncation) is detected too. A writer killed after its append but before
 * the head was rewritten leaves the head one record behind, which is not
 * evidence of tampering; the next append brings it up to date.
 *
 * A line that does not end in a newline was being written by a process that
 * died holding the lock (its operation then still has a journal or intent,
 * whose recovery writes the record again): the next append, holding the
 * lock, cuts it off.
 *
 * Several records appended at once (a bulk create's) are written with one
 * write and one fsync; the head is first rewritten with `upto`, the last seq
 * they will have, so that a writer killed before the head names the last of
 * them leaves a head that is behind by up to that many records, not one.
 */
import { constants, promises as fs } from "node:fs";
import * as z from "zod";
import { GlintError, messageOf } from "../errors.js";
import { fsyncDir, writeFileAtomic } from "../vm/atomic.js";
import { readFileIfExists } from "../vm/fsutil.js";
import { storePaths } from "../vm/layout.js";
import { withLock } from "../vm/lock.js";
import {
  type AuditEntry,
  type AuditRecord,
  canonicalJson,
  GENESIS,
  hashOf,
  recordSchema,
  sealRecordLine,
} from "./record.js";

/** Where records also go (the PostgreSQL registry's `glint_audit` table). */
export interface AuditSink {
  /** The highest seq of this home the sink holds (0: none). */
  lastSeq(): Promise<number>;
  /** Store `records` (already stored ones are ignored). */
  put(records: readonly AuditRecord[]): Promise<void>;
}

export interface AppendOptions {
  /** How long to wait for the audit lock (ms); 30 s by default. */
  readonly waitMs?: number;
  /**
   * The entry may have been appended before (a recovery): look for its
   * op_id first and return that record instead of appending a second one.
   */
  readonly idempotent?: boolean;
  /** Also send the record (and any the sink lacks) there. */
  readonly sink?: AuditSink | undefined;
  /** Told when the sink fails (the local log is authoritative). */
  readonly notify?: (message: string) => void;
}

const headSchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  hash: z.string(),
  /** Set while several records are appended at once: they may end at any seq up to this. */
  upto: z.number().int().positive().optional(),
});

/** The audit log is not what it was: appending would hide it. */
export function tampered(file: string, message: string, seq?: number): GlintError {
  return new GlintError(`${file}: ${message}`, {
    code: "invalid-file",
    details: { file, reason: seq === undefined ? "audit-log" : `audit-seq-${seq}` },
  });
}

interface Tail {
  /** The last complete record, if any. */
  readonly last: AuditRecord | undefined;
  /** Bytes of complete lines (an unfinished last line starts here). */
  readonly end: number;
  readonly size: number;
}

function parseLine(line: string, file: string, where: string): AuditRecord {
  try {
    return recordSchema.parse(JSON.parse(line)) as AuditRecord;
  } catch (error) {
    throw tampered(file, `${where} is not an audit record (${messageOf(error).split("\n")[0]})`);
  }
}

/** The last complete record, reading backwards in growing chunks. */
async function readTail(file: string): Promise<Tail> {
  const fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  });
  if (!fh) return { last: undefined, end: 0, size: 0 };
  try {
    const { size } = await fh.stat();
    for (let chunk = 64 * 1024; ; chunk *= 4) {
      const start = Math.max(0, size - chunk);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      const text = buf.toString("utf8");
      const lastNl = text.lastIndexOf("\n");
      if (lastNl < 0 && start > 0) continue;
      const end = lastNl < 0 ? 0 : start + Buffer.byteLength(text.slice(0, lastNl + 1));
      if (end === 0) return { last: undefined, end: 0, size };
      const before = text.lastIndexOf("\n", lastNl - 1);
      if (before < 0 && start > 0) continue;
      const line = text.slice(before + 1, lastNl);
      return { last: parseLine(line, file, "the last line"), end, size };
    }
  } finally {
    await fh.close();
  }
}

type Head = z.infer<typeof headSchema>;

async function readHead(home: string): Promise<Head | undefined> {
  const file = storePaths(home).auditHead;
  const raw = await readFileIfExists(file);
  if (raw === undefined) return undefined;
  try {
    return headSchema.parse(JSON.parse(raw));
  } catch {
    throw tampered(file, "not an audit head (seq and hash)");
  }
}

/** Throws unless the head agrees with the log's last record (see the module comment). */
function checkHead(file: string, head: Head | undefined, tail: Tail) {
  if (!head) return;
  const lastSeq = tail.last?.seq ?? 0;
  if (head.seq > lastSeq) {
    throw tampered(
      file,
      `records after seq ${lastSeq} are missing (the log was truncated; the head names seq ${head.seq}); run \`glint audit verify\``,
      lastSeq + 1,
    );
  }
  if (head.seq === lastSeq && tail.last && head.hash !== tail.last.hash) {
    throw tampered(
      file,
      `record ${lastSeq} is not the one appended; run \`glint audit verify\``,
      lastSeq,
    );
  }
}

/** Throws if an append would fail on a log that does not verify at its tail (cheap; no lock). */
export async function assertAppendable(home: string): Promise<void> {
  const sp = storePaths(home);
  const tail = await readTail(sp.audit);
  checkHead(sp.audit, await readHead(home), tail);
}

/** The record carrying `opId`, if the log has one. */
async function findOp(file: string, opId: string): Promise<AuditRecord | undefined> {
  const raw = await readFileIfExists(file);
  if (raw === undefined) return undefined;
  const needle = `"op_id":"${opId}"`;
  const at = raw.indexOf(needle);
  if (at < 0) return undefined;
  const start = raw.lastIndexOf("\n", at) + 1;
  const end = raw.indexOf("\n", at);
  if (end < 0) return undefined; // an unfinished line: it is cut off and written again
  return parseLine(raw.slice(start, end), file, "a record");
}

/**
 * Append `entry` as the next record of `home`'s log, durably (fsync of the
 * file, and of the directory when the file is new), under the audit lock.
 */
export async function appendAudit(
  home: string,
  entry: AuditEntry,
  options: AppendOptions = {},
): Promise<AuditRecord> {
  const [record] = await appendRecords(home, [entry], options);
  if (!record) throw new Error("no audit record appended");
  return record;
}

/**
 * Append `entries` as the next records of `home`'s log, in order, with one
 * write and one fsync (a bulk create's records, appended after its commit).
 */
export async function appendAuditMany(
  home: string,
  entries: readonly AuditEntry[],
  options: Omit<AppendOptions, "idempotent"> = {},
): Promise<AuditRecord[]> {
  if (entries.length === 0) return [];
  return appendRecords(home, entries, options);
}

async function appendRecords(
  home: string,
  entries: readonly AuditEntry[],
  options: AppendOptions,
): Promise<AuditRecord[]> {
  const sp = storePaths(home);
  await fs.mkdir(sp.dir, { recursive: true });
  const records = await withLock(
    sp.auditLock,
    { purpose: "appending to the audit log", waitMs: options.waitMs ?? 30_000 },
    async () => {
      const tail = await readTail(sp.audit);
      checkHead(sp.audit, await readHead(home), tail);
      if (tail.end < tail.size) await fs.truncate(sp.audit, tail.end);
      const first = entries[0];
      if (options.idempotent && entries.length === 1 && first) {
        const found = await findOp(sp.audit, first.op_id);
        if (found) return [found];
      }
      if (entries.length > 1) {
        const upto = (tail.last?.seq ?? 0) + entries.length;
        const at = { seq: tail.last?.seq ?? 0, hash: tail.last?.hash ?? GENESIS, upto };
        await writeFileAtomic(sp.auditHead, `${JSON.stringify(at)}\n`);
      }
      const sealed: AuditRecord[] = [];
      const lines: string[] = [];
      let seq = tail.last?.seq ?? 0;
      let prev = tail.last?.hash ?? GENESIS;
      for (const entry of entries) {
        const { record, line } = sealRecordLine(entry, ++seq, prev);
        prev = record.hash;
        sealed.push(record);
        lines.push(line);
      }
      const text = `${lines.join("\n")}\n`;
      const fh = await fs.open(
        sp.audit,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
        0o644,
      );
      try {
        await fh.write(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (tail.size === 0) await fsyncDir(sp.dir);
      // The records are durable; a head left behind is tolerated (see above).
      await writeFileAtomic(sp.auditHead, `${JSON.stringify({ seq, hash: prev })}\n`).catch(
        () => {},
      );
      return sealed;
    },
  );
  const last = records.at(-1);
  if (options.sink && last) await pushToSink(home, options.sink, records, options.notify);
  return records;
}

/** Send `records` (consecutive), and any earlier record the sink lacks, to the sink; a failure is only told. */
async function pushToSink(
  home: string,
  sink: AuditSink,
  records: readonly AuditRecord[],
  notify: ((message: string) => void) | undefined,
): Promise<void> {
  const first = records[0]?.seq ?? 0;
  const last = records.at(-1)?.seq ?? 0;
  try {
    const have = await sink.lastSeq();
    if (have >= last) return;
    const missing =
      have >= first - 1
        ? records.filter((r) => r.seq > have)
        : (await readAudit(home)).filter((r) => r.seq > have && r.seq <= last);
    await sink.put(missing);
  } catch (error) {
    notify?.(
      `audit record ${last} was not sent to the registry (${messageOf(error)}); the next one sends it`,
    );
  }
}

/** Every record of the log, oldest first (parsed, not verified). */
export async function readAudit(home: string): Promise<AuditRecord[]> {
  const file = storePaths(home).audit;
  const raw = await readFileIfExists(file);
  if (raw === undefined) return [];
  const lines = raw.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((l, i) => parseLine(l, file, `line ${i + 1}`));
}

/** The outcome of `glint audit verify`. */
export type VerifyResult =
  | { readonly ok: true; readonly records: number; readonly head: string }
  | {
      readonly ok: false;
      readonly seq: number;
      readonly problem: string;
      readonly records: number;
    };

/**
 * Check the whole chain: every line a record, seqs 1, 2, 3… without gaps,
 * each `prev` the hash before it, each `hash` its own, and the head file
 * pointing at the last record (or one before it, see above). The first
 * problem is reported with the seq where the log stops being trustworthy.
 */
export async function verifyAudit(home: string): Promise<VerifyResult> {
  const sp = storePaths(home);
  const raw = (await readFileIfExists(sp.audit)) ?? "";
  const lines = raw.split("\n");
  const unfinished = lines.pop() ?? "";
  let prev = GENESIS;
  let seq = 0;
  const bad = (at: number, problem: string): VerifyResult => ({
    ok: false,
    seq: at,
    problem,
    records: lines.length,
  });
  for (const [i, line] of lines.entries()) {
    const expected = seq + 1;
    let r: AuditRecord;
    try {
      r = recordSchema.parse(JSON.parse(line)) as AuditRecord;
    } catch {
      return bad(expected, `line ${i + 1} is not an audit record`);
    }
    if (r.seq !== expected) {
      return bad(
        expected,
        `line ${i + 1} has seq ${r.seq} where seq ${expected} belongs (deleted or reordered)`,
      );
    }
    if (r.prev !== prev) {
      // Record seq was rewritten with a fresh hash (or this one's prev was, which its hash shows).
      return hashOf(r) === r.hash && seq > 0
        ? bad(seq, `record ${seq} was rewritten (record ${r.seq} was chained to another hash)`)
        : bad(expected, `record ${r.seq} was edited (its hash does not match its content)`);
    }
    if (canonicalJson(r) !== line || hashOf(r) !== r.hash) {
      return bad(expected, `record ${r.seq} was edited (its hash does not match its content)`);
    }
    prev = r.hash;
    seq = r.seq;
  }
  if (unfinished !== "") return bad(seq + 1, `record ${seq + 1} is unfinished (truncated)`);
  const head = await readHead(home).catch((): Head => ({ seq: -1, hash: "" }));
  if (head) {
    if (head.seq < 0) return bad(seq, "the audit head is unreadable");
    if (head.seq > seq) {
      return bad(seq + 1, `records ${seq + 1}–${head.seq} are missing (truncated)`);
    }
    const at = lines[head.seq - 1];
    if (head.seq > 0 && at !== undefined && !at.includes(`"hash":"${head.hash}"`)) {
      return bad(
        head.seq,
        `record ${head.seq} is not the one appended (the head names another hash)`,
      );
    }
    if (head.seq < seq - 1 && !(head.upto !== undefined && seq <= head.upto))
      return bad(
        head.seq + 1,
        `records after ${head.seq} were added by hand (the head names ${head.seq})`,
      );
  } else if (seq > 0) {
    return bad(1, "the audit head is missing");
  }
  return { ok: true, records: seq, head: prev };
}
