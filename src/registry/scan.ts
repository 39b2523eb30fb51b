/**
 * What a home's files say: every identifier value in every VM's
 * identifiers.json, history/ and journal (an operation in progress). The
 * registry is imported, checked and rebuilt from this.
 */
import { promises as fs, readdirSync } from "node:fs";
import path from "node:path";
import { EXTRA_MACS, IDENTIFIER_FIELDS, type ValueField } from "../identity/model.js";
import { readFileIfExistsSync, stripBom } from "../vm/fsutil.js";
import { readPrunedValues } from "../vm/history.js";
import { HISTORY_IDENTIFIERS_RE, HISTORY_PRUNED, VM_FILES } from "../vm/layout.js";
import { listVmNames } from "../vm/store.js";
import { type RegistryValue, registryValue, valuesOf } from "./model.js";

/** Where a value was found. */
export type Source = "current" | "history" | "journal";

export interface FileValue extends RegistryValue {
  readonly vm: string;
  readonly generation: number;
  readonly source: Source;
  /** The file it was read from. */
  readonly file: string;
}

/** VM directories read at once. */
export const SCAN_BATCH = 64;

function readJson(file: string): unknown {
  try {
    return JSON.parse(stripBom(readFileIfExistsSync(file) ?? "null"));
  } catch {
    return undefined; // no or unreadable file: nothing in it
  }
}

function generationOf(data: unknown): number {
  const g = (data as { generation?: unknown } | null | undefined)?.generation;
  return typeof g === "number" && Number.isInteger(g) && g > 0 ? g : 1;
}

/**
 * The values in one VM's files (journal, identity, history). One listing of
 * the VM's directory says which of them are there (a scan reads thousands).
 */
export async function scanVm(home: string, vm: string): Promise<FileValue[]> {
  const dir = path.join(home, vm);
  const out: FileValue[] = [];
  const add = (data: unknown, source: Source, file: string) => {
    const generation = generationOf(data);
    for (const v of valuesOf(data)) out.push({ ...v, vm, generation, source, file });
  };
  let present: Set<string>;
  try {
    present = new Set(readdirSync(dir));
  } catch {
    return out; // gone, or not a directory: nothing in it
  }
  // The journal first: an operation that finishes meanwhile renames its
  // identity into place before it deletes its journal.
  const journalFile = path.join(dir, VM_FILES.journal);
  if (present.has(VM_FILES.journal)) {
    const journal = readJson(journalFile) as { identifiers?: unknown } | undefined;
    add(journal?.identifiers, "journal", journalFile);
  }
  const idsFile = path.join(dir, VM_FILES.identifiers);
  if (present.has(VM_FILES.identifiers)) add(readJson(idsFile), "current", idsFile);
  if (!present.has(VM_FILES.history)) return out;
  const historyDir = path.join(dir, VM_FILES.history);
  const names = await fs.readdir(historyDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => HISTORY_IDENTIFIERS_RE.test(n)).sort()) {
    const file = path.join(historyDir, name);
    add(readJson(file), "history", file);
  }
  // Identities removed by `glint history prune`: their values stay issued.
  const prunedFile = path.join(historyDir, HISTORY_PRUNED);
  const pruned = names.includes(HISTORY_PRUNED) ? await readPrunedValues(historyDir) : [];
  for (const p of pruned) {
    const field = p.field as ValueField;
    if (!(IDENTIFIER_FIELDS as readonly string[]).includes(field) && field !== EXTRA_MACS) continue;
    out.push({
      ...registryValue(field, p.value),
      vm,
      generation: p.generation,
      source: "history",
      file: prunedFile,
    });
  }
  return out;
}

/** Every value in the home's files, VM by VM (sorted by VM name). */
export async function scanHome(home: string): Promise<FileValue[]> {
  const vms = await listVmNames(home);
  const out: FileValue[] = [];
  for (let i = 0; i < vms.length; i += SCAN_BATCH) {
    const found = await Promise.all(vms.slice(i, i + SCAN_BATCH).map((vm) => scanVm(home, vm)));
    for (const list of found) out.push(...list);
  }
  return out;
}
