/**
 * The backup archive: a gzip-compressed tar stream (tar-stream + node:zlib)
 * of `vm/<path>` members, the files of one VM directory, followed by
 * `manifest.json`, which names every member with its size and sha256.
 *
 * Writing goes to a temp file next to the target, fsynced and renamed into
 * place, so an archive is either whole or absent. Reading extracts into a
 * staging directory and checks every member against the manifest (and the
 * manifest against the members) before anyone uses what it extracted.
 *
 * Disks are sparse: zero blocks cost nothing in the archive once gzip has
 * compressed them, and on extraction every all-zero 4 KiB block is skipped
 * (a hole) instead of written, so a restored disk is sparse again.
 */
import { createHash } from "node:crypto";
import { constants, createReadStream, createWriteStream, promises as fs } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import * as tar from "tar-stream";
import * as z from "zod";
import { GlintError, messageOf } from "../errors.js";
import { fsyncDir, fsyncFile, renameIntoPlace, tempPathFor } from "../vm/atomic.js";
import { VM_FILES } from "../vm/layout.js";

export const ARCHIVE_FORMAT = "glint-backup";
export const ARCHIVE_FORMAT_VERSION = 1;
/** The prefix of every member's name in the tar stream. */
const MEMBER_DIR = "vm/";
const MANIFEST = "manifest.json";

export const manifestSchema = z.strictObject({
  format: z.literal(ARCHIVE_FORMAT),
  format_version: z.literal(ARCHIVE_FORMAT_VERSION),
  glint_version: z.string(),
  schema_version: z.number().int(),
  vm: z.string(),
  created_at: z.string(),
  live: z.boolean(),
  with_disk: z.boolean(),
  members: z.array(
    z.strictObject({
      path: z.string(),
      size: z.number().int().nonnegative(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      mode: z.number().int().nonnegative(),
    }),
  ),
  /** Links Glint made (a linked base image, an absolute path): recreated on restore. */
  links: z.array(
    z.strictObject({
      path: z.literal(VM_FILES.base),
      target: z.string().refine((t) => path.isAbsolute(t), "an absolute path"),
    }),
  ),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type Member = Manifest["members"][number];

/** A member to write: its path inside the VM directory and the file it comes from. */
export interface Source {
  readonly path: string;
  readonly file: string;
}

/** A bad archive: exit 1, nothing written. */
export function badArchive(file: string, why: string): GlintError {
  return new GlintError(`${file}: ${why}`, {
    code: "invalid-file",
    details: { file, reason: "archive" },
  });
}

/** Write `sources` then the manifest to `target` atomically; resolves to the manifest. */
export async function writeArchive(
  target: string,
  sources: readonly Source[],
  manifest: Omit<Manifest, "members">,
): Promise<Manifest> {
  const tmp = tempPathFor(target);
  const pack = tar.pack();
  const out = pipeline(pack, createGzip(), createWriteStream(tmp, { flags: "wx", mode: 0o600 }));
  out.catch(() => {});
  const members: Member[] = [];
  try {
    for (const s of sources) members.push(await addFile(pack, s));
    const full: Manifest = { ...manifest, members };
    pack.entry({ name: MANIFEST, mode: 0o644 }, `${JSON.stringify(full, null, 2)}\n`);
    pack.finalize();
    await out;
    await fsyncFile(tmp);
    await renameIntoPlace(tmp, target);
    await fsyncDir(path.dirname(target));
    return full;
  } catch (error) {
    pack.destroy();
    await out.catch(() => {});
    await fs.rm(tmp, { force: true });
    throw error;
  }
}

async function addFile(pack: tar.Pack, s: Source): Promise<Member> {
  const fh = await fs.open(s.file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    const hash = createHash("sha256");
    let sink!: ReturnType<tar.Pack["entry"]>;
    const written = new Promise<void>((resolve, reject) => {
      sink = pack.entry(
        { name: MEMBER_DIR + s.path, size: st.size, mode: st.mode & 0o777, mtime: st.mtime },
        (err) => (err ? reject(err) : resolve()),
      );
    });
    // A failed member destroys the pack: its callback's error is the one thrown below.
    written.catch(() => {});
    let total = 0;
    const chunks =
      st.size === 0 ? [] : fh.createReadStream({ autoClose: false, start: 0, end: st.size - 1 });
    for await (const chunk of chunks) {
      const buf = chunk as Buffer;
      total += buf.length;
      hash.update(buf);
      if (!sink.write(buf)) await new Promise<void>((r) => sink.once("drain", () => r()));
    }
    if (total !== st.size) throw new GlintError(`${s.file} changed size while it was archived`);
    sink.end(() => {});
    await written;
    return { path: s.path, size: st.size, sha256: hash.digest("hex"), mode: st.mode & 0o777 };
  } finally {
    await fh.close();
  }
}

/** A member path is `a/b/c` with no `.`, `..` or empty part. */
function safeMemberPath(name: string): boolean {
  return (
    name.length > 0 &&
    name.length < 4096 &&
    name.split("/").every((p) => p !== "" && p !== "." && p !== "..")
  );
}

const BLOCK = 4096;

/** Write `buf` at `pos`, skipping all-zero 4 KiB blocks (holes). */
async function writeSparse(fh: fs.FileHandle, buf: Buffer, pos: number): Promise<void> {
  for (let off = 0; off < buf.length; off += BLOCK) {
    const block = buf.subarray(off, Math.min(buf.length, off + BLOCK));
    if (block.every((b) => b === 0)) continue;
    await fh.write(block, 0, block.length, pos + off);
  }
}

/**
 * Extract `file` into the new directory `staging` and check it against its
 * manifest: every member listed, with its size and sha256, and nothing else.
 * Throws a bad-archive error (the caller removes `staging`).
 */
export async function extractArchive(file: string, staging: string): Promise<Manifest> {
  await fs.mkdir(staging, { mode: 0o700 });
  const seen = new Map<string, { size: number; sha256: string }>();
  let manifestText: string | undefined;
  const extract = tar.extract();
  const input = pipeline(createReadStream(file), createGunzip(), extract);
  input.catch(() => {});
  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (manifestText !== undefined) throw badArchive(file, "a member follows the manifest");
      if (h.name === MANIFEST && h.type === "file") {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        manifestText = Buffer.concat(chunks).toString("utf8");
        continue;
      }
      const rel = h.name.startsWith(MEMBER_DIR) ? h.name.slice(MEMBER_DIR.length) : "";
      if (h.type !== "file" || !safeMemberPath(rel) || seen.has(rel)) {
        throw badArchive(file, `unexpected member ${JSON.stringify(h.name)} (not a Glint backup?)`);
      }
      const dest = path.join(staging, rel);
      await fs.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
      const out = await fs.open(
        dest,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      const hash = createHash("sha256");
      let pos = 0;
      try {
        for await (const c of entry) {
          const buf = c as Buffer;
          hash.update(buf);
          await writeSparse(out, buf, pos);
          pos += buf.length;
        }
        await out.truncate(pos);
        await out.chmod(h.mode & 0o777);
      } finally {
        await out.close();
      }
      seen.set(rel, { size: pos, sha256: hash.digest("hex") });
    }
    await input;
  } catch (error) {
    if (error instanceof GlintError) throw error;
    throw badArchive(file, `not a readable Glint backup (${messageOf(error).split("\n")[0]})`);
  }
  if (manifestText === undefined)
    throw badArchive(file, "no manifest.json (truncated, or not a Glint backup)");
  let manifest: Manifest;
  try {
    manifest = manifestSchema.parse(JSON.parse(manifestText));
  } catch (error) {
    throw badArchive(
      file,
      `manifest.json is not a Glint backup manifest (${messageOf(error).split("\n")[0]})`,
    );
  }
  const listed = new Set<string>();
  for (const m of manifest.members) {
    listed.add(m.path);
    const got = seen.get(m.path);
    if (!got) throw badArchive(file, `member ${m.path} is missing`);
    if (got.size !== m.size || got.sha256 !== m.sha256) {
      throw badArchive(file, `member ${m.path} does not match its checksum (corrupted)`);
    }
  }
  for (const rel of seen.keys()) {
    if (!listed.has(rel)) throw badArchive(file, `member ${rel} is not in the manifest`);
  }
  return manifest;
}
