/**
 * The registry of every identifier value Glint has issued (see README
 * "Registry"): one row per value, current or historical, with the home and
 * VM that hold it. A value is unique within its class (`hex128` for UUIDs and
 * machine-ids, which compare without dashes or case; `mac`; `serial`), so a
 * machine-id equal to a UUID's hex counts as taken.
 *
 * Rows are `reserved` while the operation that drew them runs (its journal
 * says so) and `issued` once the values are in the VM's files. A reserved row
 * is given back only when that operation is rolled back; an issued row is
 * never removed, so no value is ever issued twice.
 */
import { type ValueField, valueEntries } from "../identity/model.js";
import { valueKey } from "../vm/registry.js";

export type ValueClass = "hex128" | "mac" | "serial";

export function classOf(field: ValueField): ValueClass {
  if (field === "mac_address" || field === "extra_macs") return "mac";
  if (field === "cpu_serial" || field === "motherboard_serial") return "serial";
  return "hex128";
}

/** One value as the registry stores it. */
export interface RegistryValue {
  readonly field: ValueField;
  readonly value: string;
  readonly cls: ValueClass;
  /** The comparison key: `valueKey(value)`. */
  readonly key: string;
}

export function registryValue(field: ValueField, value: string): RegistryValue {
  return { field, value, cls: classOf(field), key: valueKey(value) };
}

/** `cls|key`: one string per unique slot. */
export function slotOf(v: Pick<RegistryValue, "cls" | "key">): string {
  return `${v.cls}|${v.key}`;
}

/** Every (field, string value) pair of a (possibly invalid) identifiers object, extra MACs included. */
export function valuesOf(data: unknown): RegistryValue[] {
  return valueEntries(data).map(([f, v]) => registryValue(f, v));
}

export type RowState = "reserved" | "issued";

export interface Owner {
  readonly home: string;
  readonly vm: string;
}

export interface RegistryRow extends RegistryValue, Owner {
  readonly generation: number;
  readonly state: RowState;
}

/** One VM's row in the index `glint list` reads: what list shows, as JSON text. */
export interface IndexEntry {
  readonly vm: string;
  readonly data: string;
  /** identifiers.json's mtime and size when indexed: a file changed since is read again. */
  readonly stamp: string;
}

/** One VM's new values in a batch. */
export interface BatchItem {
  readonly vm: string;
  readonly generation: number;
  readonly values: readonly RegistryValue[];
}

/**
 * A registry back end. Every method is one transaction. Home ids (see
 * home.ts) tell apart homes on several hosts that share one registry.
 */
export interface RegistryStore {
  /** What it is, for messages (never a password). */
  readonly description: string;
  /** The rows holding any of `values` (any home, any state). */
  owners(values: readonly RegistryValue[]): Promise<RegistryRow[]>;
  /**
   * Insert `values` for (home, vm) in state `reserved`, all or none: if any
   * slot is taken already (by anyone), nothing is inserted and the taken
   * values are returned.
   */
  reserve(
    owner: Owner,
    generation: number,
    values: readonly RegistryValue[],
  ): Promise<RegistryValue[]>;
  /** Drop the `reserved` rows of `owner` among `values` (a rolled-back operation). */
  release(owner: Owner, values: readonly RegistryValue[]): Promise<void>;
  /** Mark the rows of `owner` among `values` issued, and store its index entry (if given). */
  issue(owner: Owner, values: readonly RegistryValue[], entry?: IndexEntry): Promise<void>;
  /**
   * A batch of creates in one transaction: each VM's values are reserved all
   * or none; returns the VMs of which a value is held already (nothing of
   * theirs is inserted).
   */
  reserveMany(home: string, items: readonly BatchItem[]): Promise<string[]>;
  /** Settle a batch in one transaction: issue (with index entries), and release. */
  settleMany(
    home: string,
    issued: readonly (BatchItem & { readonly entry: IndexEntry })[],
    released: readonly BatchItem[],
  ): Promise<void>;
  /** The index of `home`, or undefined if it was never built. */
  index(home: string): Promise<IndexEntry[] | undefined>;
  /**
   * At most `limit` index entries of `home` whose VM name sorts after
   * `after` (byte order), in that order; undefined if the index was never built.
   */
  indexPage(home: string, after: string, limit: number): Promise<IndexEntry[] | undefined>;
  /** Replace the index of `home` (and record it as built). */
  replaceIndex(home: string, entries: readonly IndexEntry[]): Promise<void>;
  /**
   * Insert rows as they are (an import): a slot held by another owner is not
   * changed and is returned. Rows of the same owner are kept.
   */
  claim(rows: readonly RegistryRow[]): Promise<RegistryRow[]>;
  /** The `reserved` rows of one VM. */
  reservedOf(owner: Owner): Promise<RegistryRow[]>;
  /** Every row of the VMs of `home` named `first` to `last` (byte order), in VM order. */
  rowsOfVms(home: string, first: string, last: string): Promise<RegistryRow[]>;
  /** How many rows each VM of a home has (VMs with none are left out). */
  rowCounts(home: string): Promise<{ vm: string; n: number }[]>;
  /** Every row of a home. */
  rowsOf(home: string): Promise<RegistryRow[]>;
  /** Delete every row of `home`, then insert `rows`; all or nothing. */
  replaceHome(home: string, rows: readonly RegistryRow[]): Promise<void>;
  /** Number of rows of class `mac` whose value starts with `prefix` and a colon. */
  countMacs(prefix: string): Promise<number>;
  /** Whether `home` was imported; `markImported` records that it was. */
  imported(home: string): Promise<boolean>;
  markImported(home: string, path: string): Promise<void>;
  /** The audit table (PostgreSQL only): the highest seq stored for `home`. */
  auditLastSeq?(home: string): Promise<number>;
  /** Store audit records of `home` (already stored seqs are ignored). */
  auditPut?(home: string, records: readonly AuditRow[]): Promise<void>;
  close(): Promise<void>;
}

/** An audit record as the registry stores it. */
export interface AuditRow {
  readonly seq: number;
  readonly op_id: string;
  readonly vm: string | null;
  readonly operation: string;
  readonly time: string;
  readonly hash: string;
  /** The record's canonical JSON. */
  readonly record: string;
}
