/** Snapshots of a directory tree, to show that an operation changed nothing (or what it changed). */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";

const sha256 = async (file: string): Promise<string> =>
  createHash("sha256")
    .update(await fs.readFile(file))
    .digest("hex");

/** Every entry under `dir` (relative path → SHA-256 of a file's content, or "dir"). */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(e.parentPath, e.name);
    const rel = path.relative(dir, full);
    if (e.isDirectory()) out[rel] = "dir";
    else if (e.isFile()) out[rel] = await sha256(full);
    else out[rel] = "other";
  }
  return out;
}

export interface Entry {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  mtimeMs: number;
  size: number;
  sha256?: string;
  target?: string;
}

/** Every path under `root` (and "." itself) with type, mode, mtime, size and content hash / link target. */
export async function snapshotTree(root: string): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  async function walk(dir: string): Promise<void> {
    const names = (await fs.readdir(dir)).sort();
    for (const name of names) {
      const full = path.join(dir, name);
      const st = await fs.lstat(full);
      const rel = path.relative(root, full);
      const e: Entry = {
        type: st.isFile()
          ? "file"
          : st.isDirectory()
            ? "dir"
            : st.isSymbolicLink()
              ? "symlink"
              : "other",
        mode: st.mode & 0o7777,
        mtimeMs: st.mtimeMs,
        size: st.size,
      };
      if (st.isFile()) e.sha256 = await sha256(full);
      if (st.isSymbolicLink()) e.target = await fs.readlink(full);
      out[rel] = e;
      if (st.isDirectory()) await walk(full);
    }
  }
  const st = await fs.lstat(root);
  out["."] = { type: "dir", mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, size: st.size };
  await walk(root);
  return out;
}
