/**
 * ext2/3/4 offline, through e2fsprogs: list directories and copy files out
 * with one `debugfs -f` run per batch, write files back (`rm`, `write`,
 * `set_inode_field`) with one `debugfs -w -f` run, change the UUID with
 * tune2fs (metadata_csum_seed on a metadata_csum filesystem, so that no
 * checksum has to be rewritten).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { runTool } from "../host/tools.js";

export interface DirEntry {
  readonly name: string;
  readonly ino: number;
  /** Full st_mode (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

export const isReg = (e: DirEntry) => (e.mode & S_IFMT) === S_IFREG;
export const isDir = (e: DirEntry) => (e.mode & S_IFMT) === S_IFDIR;

/** Quote a path for debugfs's command parser; undefined if it cannot be quoted. */
export function dq(p: string): string | undefined {
  if (/["\n\r\0]/.test(p)) return undefined;
  return /[\s\\'#]/.test(p) ? `"${p}"` : p;
}

/** Parse `ls -p` output lines (`/ino/mode/uid/gid/name/size/`). */
export function parseLsP(text: string): DirEntry[] {
  const out: DirEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split("/");
    if (f.length !== 8 || f[0] !== "" || f[7] !== "") continue;
    const name = f[5] ?? "";
    if (name === "." || name === "..") continue;
    out.push({
      ino: Number(f[1]),
      mode: Number.parseInt(f[2] ?? "0", 8),
      uid: Number(f[3]),
      gid: Number(f[4]),
      name,
      size: f[6] === "" ? 0 : Number(f[6]),
    });
  }
  return out;
}

export interface DebugfsOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly workDir: string;
}

let batchCounter = 0;

/**
 * Run `commands` in one debugfs process; returns each command's stdout.
 * With `write`, any error message fails the whole batch (the caller works on
 * a temp copy, so nothing half-written survives).
 */
export async function debugfsBatch(
  device: string,
  commands: readonly string[],
  write: boolean,
  o: DebugfsOptions,
): Promise<{ outputs: string[]; errors: string[] }> {
  if (commands.length === 0) return { outputs: [], errors: [] };
  const cmdFile = path.join(o.workDir, `debugfs-${process.pid}-${batchCounter++}.cmd`);
  await fs.writeFile(cmdFile, `${commands.join("\n")}\n`, { flag: "wx" });
  const { stdout, stderr } = await runTool(
    "debugfs",
    [...(write ? ["-w"] : []), "-f", cmdFile, device],
    o.env === undefined ? {} : { env: o.env },
  );
  await fs.rm(cmdFile, { force: true });
  const outputs: string[] = [];
  let cur: string[] | undefined;
  for (const line of stdout.split("\n")) {
    if (line.startsWith("debugfs: ")) {
      if (cur) outputs.push(cur.join("\n"));
      cur = [];
    } else cur?.push(line);
  }
  if (cur) outputs.push(cur.join("\n"));
  const errors = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^debugfs \d/.test(l));
  if (write && errors.length > 0) {
    throw new GlintError(`debugfs could not write ${device}: ${errors[0]}`);
  }
  if (outputs.length !== commands.length) {
    throw new GlintError(
      `debugfs ran ${outputs.length} of ${commands.length} commands on ${device}`,
    );
  }
  return { outputs, errors };
}

/**
 * List directories and copy regular files out, in one debugfs run. A missing
 * directory gives undefined; a file that cannot be read is left out.
 */
export async function listAndRead(
  device: string,
  dirs: readonly string[],
  files: readonly string[],
  o: DebugfsOptions,
): Promise<{ dirs: Map<string, DirEntry[] | undefined>; files: Map<string, Buffer> }> {
  const quoted = dirs.map((d) => dq(d));
  const cmds = quoted.filter((q): q is string => q !== undefined).map((q) => `ls -p ${q}`);
  const nLs = cmds.length;
  const dumpDir = files.length === 0 ? undefined : await fs.mkdtemp(path.join(o.workDir, "dump-"));
  const locals: [string, string][] = [];
  files.forEach((f, i) => {
    const q = dq(f);
    if (q === undefined || dumpDir === undefined) return;
    const local = path.join(dumpDir, String(i));
    locals.push([f, local]);
    cmds.push(`dump ${q} ${local}`);
  });
  try {
    const { outputs } = await debugfsBatch(device, cmds, false, o);
    const listed = new Map<string, DirEntry[] | undefined>();
    let k = 0;
    dirs.forEach((d, i) => {
      if (quoted[i] === undefined) {
        listed.set(d, undefined);
        return;
      }
      const text = outputs[k++] ?? "";
      // A real directory lists at least "." and "..".
      listed.set(d, /\/\.\/\//.test(text) ? parseLsP(text) : undefined);
    });
    if (k !== nLs) throw new GlintError("internal: debugfs listing count");
    const read = new Map<string, Buffer>();
    for (const [f, local] of locals) {
      const data = await fs.readFile(local).catch(() => undefined);
      if (data !== undefined) read.set(f, data);
    }
    return { dirs: listed, files: read };
  } finally {
    if (dumpDir !== undefined) await fs.rm(dumpDir, { recursive: true, force: true });
  }
}

/** List directories; a missing directory gives undefined. */
export async function listDirs(
  device: string,
  dirs: readonly string[],
  o: DebugfsOptions,
): Promise<Map<string, DirEntry[] | undefined>> {
  return (await listAndRead(device, dirs, [], o)).dirs;
}

/** Copy regular files out of the filesystem; returns their contents by path. */
export async function readFiles(
  device: string,
  files: readonly string[],
  o: DebugfsOptions,
): Promise<Map<string, Buffer>> {
  if (files.length === 0) return new Map();
  return (await listAndRead(device, [], files, o)).files;
}

/** One change to make inside an ext filesystem. */
export type ExtEdit =
  | {
      readonly op: "put";
      readonly path: string;
      readonly data: Buffer;
      /** Full st_mode, uid and gid of the new inode. */
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
      /** Whether a file is there now (removed first). */
      readonly replace: boolean;
    }
  | { readonly op: "rm"; readonly path: string }
  | { readonly op: "rmdir"; readonly path: string }
  /** A new directory owned by root, mode 0755. */
  | { readonly op: "mkdir"; readonly path: string };

/** Apply `edits` in one `debugfs -w` run, in order. */
export async function applyEdits(
  device: string,
  edits: readonly ExtEdit[],
  o: DebugfsOptions,
): Promise<void> {
  if (edits.length === 0) return;
  const dir = await fs.mkdtemp(path.join(o.workDir, "put-"));
  const cmds: string[] = [];
  let i = 0;
  for (const e of edits) {
    const q = dq(e.path);
    if (q === undefined) throw new GlintError(`cannot name ${JSON.stringify(e.path)} to debugfs`);
    if (e.op === "rm") cmds.push(`rm ${q}`);
    else if (e.op === "rmdir") cmds.push(`rmdir ${q}`);
    else if (e.op === "mkdir") {
      cmds.push(`mkdir ${q}`);
      cmds.push(`set_inode_field ${q} mode 040755`);
      cmds.push(`set_inode_field ${q} uid 0`);
      cmds.push(`set_inode_field ${q} gid 0`);
    } else {
      const local = path.join(dir, String(i++));
      await fs.writeFile(local, e.data, { mode: 0o600 });
      if (e.replace) cmds.push(`rm ${q}`);
      cmds.push(`write ${local} ${q}`);
      cmds.push(`set_inode_field ${q} mode 0${e.mode.toString(8)}`);
      cmds.push(`set_inode_field ${q} uid ${e.uid}`);
      cmds.push(`set_inode_field ${q} gid ${e.gid}`);
    }
  }
  try {
    await debugfsBatch(device, cmds, true, o);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Set the filesystem UUID. On a metadata_csum filesystem without
 * metadata_csum_seed, the seed feature is turned on in the same run so the
 * checksums stay valid without a rewrite.
 */
export async function setExtUuid(
  device: string,
  uuid: string,
  needsSeed: boolean,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  const args = needsSeed ? ["-O", "metadata_csum_seed", "-U", uuid, device] : ["-U", uuid, device];
  await runTool("tune2fs", args, env === undefined ? {} : { env });
}
