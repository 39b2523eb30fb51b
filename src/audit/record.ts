/**
 * The audit record: what one state change of a home looks like in
 * `<home>/.glint/audit.jsonl`, its canonical JSON and its hash.
 *
 * A line is the canonical JSON (keys sorted at every level, no spaces) of a
 * record. `hash` is the sha256 (hex) of the canonical JSON of the record
 * without `hash`; `prev` is the previous record's `hash` (64 zeros for the
 * first), so that editing, deleting or reordering a record breaks the chain.
 */
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import * as z from "zod";

/** `prev` of the first record. */
export const GENESIS = "0".repeat(64);

/** A value in a change: what identifiers, config fields and states are made of. */
export type AuditValue = string | number | boolean | null;

/** One changed field, old → new (null: absent). */
export interface AuditChange {
  readonly old: AuditValue;
  readonly new: AuditValue;
}

/** What a caller says about a change; the log adds seq, prev and hash. */
export interface AuditEntry {
  /** Unique per operation: an operation recovered after a crash is recorded once. */
  readonly op_id: string;
  readonly time: string;
  readonly host: string;
  readonly uid: number;
  readonly user: string;
  readonly pid: number;
  /** The command line (`glint nuke web-1 --yes`) or library call that made the change. */
  readonly command: string;
  /** The VM changed, or null for a change of the home (e.g. a template). */
  readonly vm: string | null;
  /** create, regen-disk, regen-base, nuke, reset-uefi, reset-tpm, sysprep, edit, rm, restore, backup, template-… */
  readonly operation: string;
  readonly changes: Readonly<Record<string, AuditChange>>;
}

export interface AuditRecord extends AuditEntry {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
}

const value = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const HEX64 = /^[0-9a-f]{64}$/;

export const entrySchema = z.strictObject({
  op_id: z.string().regex(/^[0-9a-f]{32}$/),
  time: z.string().min(1),
  host: z.string(),
  uid: z.number().int(),
  user: z.string(),
  pid: z.number().int().nonnegative(),
  command: z.string(),
  vm: z.string().nullable(),
  operation: z.string().regex(/^[a-z][a-z0-9-]*$/),
  changes: z.record(z.string(), z.strictObject({ old: value, new: value })),
});

export const recordSchema = entrySchema.extend({
  seq: z.number().int().positive(),
  prev: z.string().regex(HEX64),
  hash: z.string().regex(HEX64),
});

/** Keys sorted at every level, no whitespace: one text per value. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  // Code-unit order, as `<` compares (what the log has always used).
  const keys = Object.keys(o).sort();
  let out = "{";
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) continue;
    out += `${out.length > 1 ? "," : ""}${JSON.stringify(k)}:${canonicalJson(x)}`;
  }
  return `${out}}`;
}

/** sha256 (hex) of the canonical JSON of `record` without its `hash`. */
export function hashOf(record: Omit<AuditRecord, "hash"> | AuditRecord): string {
  const { hash: _ignored, ...rest } = record as AuditRecord;
  return createHash("sha256").update(canonicalJson(rest)).digest("hex");
}

/** Chain `entry` after the record whose hash is `prev`. */
export function sealRecord(entry: AuditEntry, seq: number, prev: string): AuditRecord {
  return sealRecordLine(entry, seq, prev).record;
}

/**
 * {@link sealRecord}, and the record's canonical JSON (its line), each
 * field's canonical JSON made once for both the hash and the line.
 */
export function sealRecordLine(
  entry: AuditEntry,
  seq: number,
  prev: string,
): { record: AuditRecord; line: string } {
  const unsealed: Record<string, unknown> = { ...entry, seq, prev };
  const keys = Object.keys(unsealed)
    .filter((k) => unsealed[k] !== undefined)
    .sort();
  const parts = new Map(keys.map((k) => [k, `${JSON.stringify(k)}:${canonicalJson(unsealed[k])}`]));
  const hash = createHash("sha256")
    .update(`{${keys.map((k) => parts.get(k)).join(",")}}`)
    .digest("hex");
  parts.set("hash", `"hash":${JSON.stringify(hash)}`);
  const line = `{${[...keys, "hash"]
    .sort()
    .map((k) => parts.get(k))
    .join(",")}}`;
  return { record: { ...(unsealed as Omit<AuditRecord, "hash">), hash }, line };
}

/** A fresh operation id (32 hex digits). */
export function newOpId(): string {
  return randomBytes(16).toString("hex");
}

/** Who and where: the process-level facts of a record. */
export interface AuditActor {
  readonly host: string;
  readonly uid: number;
  readonly user: string;
  readonly pid: number;
  readonly command: string;
}

/** The facts of this process; `command` defaults to its argv. */
export function currentActor(command?: string): AuditActor {
  let user = "";
  try {
    user = os.userInfo().username;
  } catch {
    user = process.env.USER ?? "";
  }
  return {
    host: os.hostname(),
    uid: process.getuid?.() ?? -1,
    user,
    pid: process.pid,
    command: command ?? process.argv.slice(1).join(" "),
  };
}

/** A new entry for `operation` on `vm` by this process. */
export function newEntry(
  actor: AuditActor,
  vm: string | null,
  operation: string,
  changes: Readonly<Record<string, AuditChange>>,
): AuditEntry {
  return {
    op_id: newOpId(),
    time: new Date().toISOString(),
    ...actor,
    pid: process.pid,
    vm,
    operation,
    changes,
  };
}

/** A field of a flat record: a list (e.g. `extra_macs`) is recorded comma-joined. */
export type FlatValue = AuditValue | readonly string[];

const flat = (v: FlatValue | undefined): AuditValue =>
  v === undefined ? null : Array.isArray(v) ? v.join(",") : (v as AuditValue);

/** The fields that differ between two flat records, old → new (absent: null). */
export function diffFields(
  before: Readonly<Record<string, FlatValue>> | undefined,
  after: Readonly<Record<string, FlatValue>> | undefined,
): Record<string, AuditChange> {
  const out: Record<string, AuditChange> = {};
  const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  for (const k of keys) {
    const o = flat(before?.[k]);
    const n = flat(after?.[k]);
    if (o !== n) out[k] = { old: o, new: n };
  }
  return out;
}
