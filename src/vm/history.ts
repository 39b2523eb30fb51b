/**
 * A VM's history/ as generations: each archived identity with the NVRAM,
 * TPM state and overlays it had (archived by the operation that replaced it,
 * or by a `reset` or `edit` while it was current), and the files archived
 * during the current generation. `pruneHistory`
 * removes the oldest generations; the values of their identities are kept
 * in history/pruned-values.json (still issued, see the registry).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import * as z from "zod";
import { type ValueField, valueEntries } from "../identity/model.js";
import { writeFileAtomic } from "./atomic.js";
import { readFileIfExists, stripBom } from "./fsutil.js";
import {
  HISTORY_IDENTIFIERS_RE,
  HISTORY_NVRAM_RE,
  HISTORY_OVERLAY_RE,
  HISTORY_PRUNED,
  HISTORY_TPM_RE,
  parseHistoryName,
  type VmPaths,
} from "./layout.js";

export type ArchivedKind = "identifiers" | "uefi-nvram" | "tpm" | "overlay" | "other";

export interface ArchivedFile {
  readonly file: string;
  readonly kind: ArchivedKind;
  readonly archivedAt: string;
  readonly reason: string;
  /** Bytes (an overlay archived as a hard link shares its blocks with nothing else). */
  readonly size: number;
}

export interface HistoryGeneration {
  /** The archived identity; undefined for the files archived since the last one. */
  readonly identifiers: ArchivedFile | undefined;
  /** NVRAM, TPM state and overlays archived while that identity was current. */
  readonly files: readonly ArchivedFile[];
}

function kindOf(name: string): ArchivedKind {
  if (HISTORY_IDENTIFIERS_RE.test(name)) return "identifiers";
  if (HISTORY_NVRAM_RE.test(name)) return "uefi-nvram";
  if (HISTORY_TPM_RE.test(name)) return "tpm";
  if (HISTORY_OVERLAY_RE.test(name)) return "overlay";
  return "other";
}

/** Every archived file of the VM, oldest first. */
async function archived(paths: VmPaths): Promise<ArchivedFile[]> {
  const names = await fs.readdir(paths.history).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as string[];
    throw error;
  });
  const out: ArchivedFile[] = [];
  for (const name of names.filter((n) => /^\d{4}-/.test(n)).sort()) {
    const file = path.join(paths.history, name);
    const st = await fs.lstat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    out.push({ file, kind: kindOf(name), ...parseHistoryName(name), size: st.size });
  }
  return out;
}

/**
 * The VM's history as generations, oldest first; the last one may have no
 * identity. An operation names its identity's archive when it draws, then
 * archives the NVRAM, TPM state and overlay it replaces under the same label:
 * those follow the identity. Files archived by another label (`reset-uefi`,
 * `edit`…) belong to the generation that was current then: the next identity.
 */
export async function historyGenerations(paths: VmPaths): Promise<HistoryGeneration[]> {
  const out: { identifiers: ArchivedFile; files: ArchivedFile[] }[] = [];
  let pending: ArchivedFile[] = [];
  let op: string | undefined;
  for (const a of await archived(paths)) {
    const last = out[out.length - 1];
    if (a.kind === "identifiers") {
      out.push({ identifiers: a, files: pending });
      pending = [];
      op = a.reason;
    } else if (last && a.reason === op) last.files.push(a);
    else {
      op = undefined;
      pending.push(a);
    }
  }
  return pending.length > 0 ? [...out, { identifiers: undefined, files: pending }] : out;
}

const prunedSchema = z.object({
  schema_version: z.literal(1),
  values: z.array(
    z.object({ field: z.string(), value: z.string(), generation: z.number().int().min(1) }),
  ),
});
export type PrunedValue = z.infer<typeof prunedSchema>["values"][number];

/** The values of pruned identities (none when nothing was pruned, or the file is unreadable). */
export async function readPrunedValues(historyDir: string): Promise<PrunedValue[]> {
  const raw = await readFileIfExists(path.join(historyDir, HISTORY_PRUNED)).catch(() => undefined);
  if (raw === undefined) return [];
  try {
    const r = prunedSchema.safeParse(JSON.parse(stripBom(raw)));
    return r.success ? r.data.values : [];
  } catch {
    return [];
  }
}

/**
 * Remove every generation but the `keep` newest (files archived since the
 * last identity are always kept). The removed identities' values are
 * recorded first. Returns the removed files. The caller holds the VM's lock.
 */
export async function pruneHistory(paths: VmPaths, keep: number): Promise<ArchivedFile[]> {
  const generations = await historyGenerations(paths);
  const closed = generations.filter((g) => g.identifiers !== undefined);
  const doomed = closed.slice(0, Math.max(0, closed.length - keep));
  if (doomed.length === 0) return [];
  const values = await readPrunedValues(paths.history);
  const seen = new Set(values.map((v) => `${v.field}|${v.value}`));
  for (const g of doomed) {
    const raw = await readFileIfExists(g.identifiers?.file ?? "").catch(() => undefined);
    let data: unknown;
    try {
      data = JSON.parse(stripBom(raw ?? "null"));
    } catch {
      data = undefined;
    }
    const generation = (data as { generation?: unknown } | undefined)?.generation;
    for (const [field, value] of valueEntries(data) as [ValueField, string][]) {
      if (seen.has(`${field}|${value}`)) continue;
      seen.add(`${field}|${value}`);
      values.push({ field, value, generation: typeof generation === "number" ? generation : 1 });
    }
  }
  await writeFileAtomic(
    path.join(paths.history, HISTORY_PRUNED),
    `${JSON.stringify({ schema_version: 1, values }, null, 2)}\n`,
  );
  const removed: ArchivedFile[] = [];
  for (const g of doomed) {
    for (const f of [...g.files, ...(g.identifiers ? [g.identifiers] : [])]) {
      await fs.rm(f.file, { force: true });
      removed.push(f);
    }
  }
  return removed;
}
