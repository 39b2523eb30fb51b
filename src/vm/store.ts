/**
 * Reading and writing one VM's files. Callers hold the VM's lock.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { GlintError, messageOf } from "../errors.js";
import { VM_NAME_RE } from "../identity/formats.js";
import { parseIdentifiers, SystemIdentifiers } from "../identity/model.js";
import { describeZodError } from "../zod-errors.js";
import { fsyncDir, writeFileAtomic } from "./atomic.js";
import { defaultConfig, type VmConfig, vmConfigSchema } from "./config.js";
import { readFileIfExists, readNoFollow, stripBom } from "./fsutil.js";
import {
  HISTORY_IDENTIFIERS_RE,
  historyPath,
  parseHistoryName,
  VM_FILES,
  type VmPaths,
} from "./layout.js";

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}

async function readJson(
  file: string,
  vm: string,
): Promise<{ raw: string; data: unknown } | undefined> {
  const raw = await readFileIfExists(file);
  if (raw === undefined) return undefined;
  try {
    return { raw, data: JSON.parse(stripBom(raw)) };
  } catch (error) {
    throw invalidJson(file, error, vm);
  }
}

/** The error for a file that is not JSON. */
export function invalidJson(file: string, error: unknown, vm?: string): GlintError {
  return new GlintError(`${file}: not valid JSON (${messageOf(error)})`, {
    code: "invalid-file",
    details: {
      file,
      reason: path.basename(file) === VM_FILES.identifiers ? "identifiers" : "json",
      ...(vm === undefined ? {} : { vm }),
    },
  });
}

/** The VM's identifiers, or `undefined` if it has none. Throws a GlintError if the file is invalid. */
export async function readIdentifiers(paths: VmPaths): Promise<SystemIdentifiers | undefined> {
  const json = await readJson(paths.identifiers, paths.name);
  return json && parseIdentifiers(json.data, paths.identifiers, paths.name);
}

export async function writeIdentifiers(paths: VmPaths, ids: SystemIdentifiers): Promise<void> {
  await fs.mkdir(paths.dir, { recursive: true });
  await writeFileAtomic(paths.identifiers, SystemIdentifiers.toJSON(ids));
}

export async function readConfig(paths: VmPaths): Promise<VmConfig | undefined> {
  const json = await readJson(paths.config, paths.name);
  if (!json) return undefined;
  const r = vmConfigSchema.safeParse(json.data);
  if (!r.success) {
    throw new GlintError(`${paths.config}: ${describeZodError(r.error, json.data)}`, {
      code: "invalid-file",
      details: { file: paths.config, vm: paths.name, reason: "config" },
    });
  }
  return r.data;
}

/** The VM's config.json, or the defaults if it has none. */
export async function readConfigOrDefault(paths: VmPaths): Promise<VmConfig> {
  return (await readConfig(paths)) ?? defaultConfig();
}

export async function writeConfig(paths: VmPaths, config: VmConfig): Promise<void> {
  await fs.mkdir(paths.dir, { recursive: true });
  await writeFileAtomic(paths.config, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Copy a file into the VM's history/ (never overwriting an entry), with the
 * file's own mode, and return the new path. `label` says why, e.g. "base" or
 * "nuke". A symlink is refused, never followed.
 */
export async function archiveFile(
  paths: VmPaths,
  file: string,
  label: string,
): Promise<string | undefined> {
  const source = await readNoFollow(file);
  if (source === undefined) return undefined;
  await fs.mkdir(paths.history, { recursive: true });
  const target = historyPath(paths, file, label);
  await writeFileAtomic(target, source.data, { mode: source.mode });
  return target;
}

/**
 * Copy `file` to `target` in history/ unless `target` exists already (so a
 * recovery that repeats the copy keeps one entry). Returns whether `file` existed.
 */
export async function archiveFileTo(
  paths: VmPaths,
  file: string,
  target: string,
): Promise<boolean> {
  if (existsSync(target)) return true;
  // Never through a symlink; the copy keeps the file's mode.
  const source = await readNoFollow(file);
  if (source === undefined) return false;
  await fs.mkdir(paths.history, { recursive: true });
  await writeFileAtomic(target, source.data, { mode: source.mode });
  return true;
}

/**
 * Keep a (large) file in history/ without copying it: a hard link to the same
 * data, so the original path can then be replaced atomically.
 */
export async function archiveByLink(
  paths: VmPaths,
  file: string,
  label: string,
): Promise<string | undefined> {
  await fs.mkdir(paths.history, { recursive: true });
  const target = historyPath(paths, file, label);
  try {
    await fs.link(file, target);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  await fsyncDir(paths.history);
  return target;
}

export interface HistoryEntry {
  readonly file: string;
  /** When it was archived (from the file name). */
  readonly archivedAt: string;
  /** The policy or operation that replaced it. */
  readonly reason: string;
  /** The identity, or the reason it cannot be read (a corrupt file is still kept). */
  readonly identifiers: SystemIdentifiers | { readonly error: string };
}

/** Past identities of the VM, oldest first. */
export async function listHistory(paths: VmPaths): Promise<HistoryEntry[]> {
  let names: string[];
  try {
    names = await fs.readdir(paths.history);
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
  const entries: HistoryEntry[] = [];
  for (const name of names.filter((n) => HISTORY_IDENTIFIERS_RE.test(n)).sort()) {
    const { archivedAt, reason } = parseHistoryName(name);
    const file = path.join(paths.history, name);
    let identifiers: HistoryEntry["identifiers"];
    try {
      const raw = (await readFileIfExists(file)) ?? "";
      identifiers = parseIdentifiers(JSON.parse(stripBom(raw)), file);
    } catch (error) {
      identifiers = { error: error instanceof Error ? error.message : String(error) };
    }
    entries.push({ file, archivedAt, reason, identifiers });
  }
  return entries;
}

/**
 * Names of the VMs under `home` (directories with a valid name), sorted.
 * A symlink to a directory is not a VM directory (Glint refuses to use one);
 * `includeSymlinks` lists such links too, so that `list` can show them as unusable.
 */
export async function listVmNames(
  home: string,
  options: { includeSymlinks?: boolean } = {},
): Promise<string[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await fs.readdir(home, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
  return entries
    .filter(
      (e) =>
        (e.isDirectory() || (options.includeSymlinks && e.isSymbolicLink())) &&
        VM_NAME_RE.test(e.name),
    )
    .map((e) => e.name)
    .sort();
}
