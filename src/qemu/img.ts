/**
 * Disk images through qemu-img: overlays with a relative backing file (so a
 * VM directory can be moved), blank disks, and `qemu-img info`.
 * Images are created under a temporary name in the target directory and
 * renamed into place, so a crash never leaves a half-written image.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import * as z from "zod";
import { GlintError } from "../errors.js";
import { runTool } from "../host/tools.js";
import { fsyncFile, renameIntoPlace, tempPathFor } from "../vm/atomic.js";
import { DISK_SIZE_RE } from "../vm/config.js";

export interface ImgOptions {
  /** Environment for finding and running qemu-img (GLINT_QEMU_IMG, PATH). */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Run `create` (which writes `tmp`, a temp path named like src/vm/atomic.ts's
 * so removeStaleTemps cleans up after a crash), fsync `tmp` and rename it to
 * `target`.
 */
async function createAtomically(
  target: string,
  create: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = tempPathFor(target);
  try {
    await create(tmp);
    await fsyncFile(tmp);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await renameIntoPlace(tmp, target);
}

/**
 * The backing-file reference stored in an overlay at `overlayPath`: the path
 * of `basePath` relative to the overlay's directory. A `./` is prepended when
 * the first path component contains ':' so that QEMU does not read it as a
 * protocol prefix (`nbd:`, `json:` …).
 */
export function relativeBackingPath(basePath: string, overlayPath: string): string {
  const rel = path.relative(path.dirname(path.resolve(overlayPath)), path.resolve(basePath));
  const firstComponent = rel.split("/")[0] ?? "";
  return firstComponent.includes(":") ? `./${rel}` : rel;
}

export interface CreateOverlayOptions extends ImgOptions {
  /** Format of the base image (default qcow2). */
  readonly backingFormat?: "qcow2" | "raw";
}

/**
 * Create (or replace) `overlayPath` as a qcow2 overlay on `basePath`, with the
 * backing file recorded relative to the overlay's directory:
 * `qemu-img create -f qcow2 -b <relative base> -F qcow2 <overlay>`.
 */
export async function createOverlay(
  basePath: string,
  overlayPath: string,
  options: CreateOverlayOptions = {},
): Promise<void> {
  const base = path.resolve(basePath);
  const overlay = path.resolve(overlayPath);
  try {
    await fs.access(base);
  } catch {
    throw new GlintError(`cannot create ${overlay}: base image ${base} does not exist`);
  }
  const backing = relativeBackingPath(base, overlay);
  const backingFormat = options.backingFormat ?? "qcow2";
  await createAtomically(overlay, async (tmp) => {
    await runTool(
      "qemu-img",
      ["create", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, tmp],
      options,
    );
  });
}

export { DISK_SIZE_RE };

/** Create (or replace) an empty qcow2 image of `size` (e.g. "8G", or bytes) at `target`. */
export async function createBlankDisk(
  target: string,
  size: string | number,
  options: ImgOptions = {},
): Promise<void> {
  const sizeText = typeof size === "number" ? String(size) : size;
  if (
    !DISK_SIZE_RE.test(sizeText) ||
    (typeof size === "number" && (!Number.isSafeInteger(size) || size <= 0))
  ) {
    throw new GlintError(`invalid disk size ${JSON.stringify(size)}: use a size like 512M or 8G`);
  }
  await createAtomically(path.resolve(target), async (tmp) => {
    await runTool("qemu-img", ["create", "-q", "-f", "qcow2", tmp, sizeText], options);
  });
}

const imageInfoSchema = z.looseObject({
  filename: z.string(),
  format: z.string(),
  "virtual-size": z.number().int().nonnegative(),
  "actual-size": z.number().int().nonnegative().optional(),
  "backing-filename": z.string().optional(),
  "full-backing-filename": z.string().optional(),
  "backing-filename-format": z.string().optional(),
  "format-specific": z
    .looseObject({ data: z.looseObject({ "data-file": z.string().optional() }).optional() })
    .optional(),
});

export interface ImageInfo {
  readonly filename: string;
  /** e.g. "qcow2" or "raw". */
  readonly format: string;
  /** Guest-visible size in bytes. */
  readonly virtualSize: number;
  /** Bytes used on the host, if reported. */
  readonly actualSize?: number;
  /** The backing file exactly as stored in the image (relative for Glint's overlays). */
  readonly backingFilename?: string;
  /** The backing file resolved against the image's directory. */
  readonly fullBackingFilename?: string;
  readonly backingFormat?: string;
  /** A qcow2 image's external data file (its guest data lives there), if any. */
  readonly dataFile?: string;
}

/**
 * `qemu-img info --output=json` of `image` (with --force-share, so it works on
 * an image a running VM has open).
 */
export async function imageInfo(image: string, options: ImgOptions = {}): Promise<ImageInfo> {
  const abs = path.resolve(image);
  const { stdout } = await runTool(
    "qemu-img",
    ["info", "--output=json", "--force-share", abs],
    options,
  );
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new GlintError(`qemu-img info ${abs}: output is not JSON`);
  }
  const r = imageInfoSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new GlintError(
      `qemu-img info ${abs}: unexpected output (${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"})`,
    );
  }
  const d = r.data;
  const dataFile = d["format-specific"]?.data?.["data-file"];
  return {
    filename: d.filename,
    format: d.format,
    virtualSize: d["virtual-size"],
    ...(d["actual-size"] === undefined ? {} : { actualSize: d["actual-size"] }),
    ...(d["backing-filename"] === undefined ? {} : { backingFilename: d["backing-filename"] }),
    ...(d["full-backing-filename"] === undefined
      ? {}
      : { fullBackingFilename: d["full-backing-filename"] }),
    ...(d["backing-filename-format"] === undefined
      ? {}
      : { backingFormat: d["backing-filename-format"] }),
    ...(dataFile === undefined ? {} : { dataFile }),
  };
}

/**
 * Throws a GlintError unless every backing file of `image` (and theirs) can
 * be opened: `qemu-img info --backing-chain` fails on the first one that does
 * not resolve (a relative name is resolved against its image's directory).
 */
export async function assertBackingChainResolves(
  image: string,
  options: ImgOptions = {},
): Promise<void> {
  const abs = path.resolve(image);
  try {
    await runTool(
      "qemu-img",
      ["info", "--output=json", "--force-share", "--backing-chain", abs],
      options,
    );
  } catch (error) {
    const info = await imageInfo(abs, options);
    const why = error instanceof Error ? error.message : String(error);
    throw new GlintError(
      `the backing file ${info.backingFilename ?? "?"} of ${abs} does not resolve (a relative name is taken from the image's directory): ${why}`,
      { cause: error },
    );
  }
}

/**
 * Write `target` as one self-contained qcow2 image with the guest-visible
 * content of `source` (its backing chain and any external data file merged
 * in): `qemu-img convert -O qcow2`, atomically.
 */
export async function flattenImage(
  source: string,
  target: string,
  options: ImgOptions = {},
): Promise<void> {
  const abs = path.resolve(source);
  await createAtomically(path.resolve(target), async (tmp) => {
    await runTool("qemu-img", ["convert", "-q", "-O", "qcow2", abs, tmp], options);
  });
}

/**
 * A base must be one self-contained image: a backing file (or a qcow2
 * external data file) would let the guest read whatever host file it names,
 * e.g. `qemu-img create -f qcow2 -b /etc/shadow -F raw evil.qcow2`. Such a
 * base is refused, or flattened when the user opted in with --flatten-base;
 * a backing chain that does not resolve is refused either way. Resolves to
 * whether the base must be flattened.
 */
export async function checkSelfContained(
  base: string,
  info: ImageInfo,
  flatten: boolean,
  options: ImgOptions = {},
): Promise<boolean> {
  if (info.backingFilename === undefined && info.dataFile === undefined) return false;
  if (info.backingFilename !== undefined) await assertBackingChainResolves(base, options);
  if (flatten) return true;
  const what =
    info.backingFilename !== undefined
      ? `has a backing file (${info.backingFilename})`
      : `keeps its data in an external data file (${info.dataFile})`;
  throw new GlintError(
    `base image ${base} ${what}, which the guest would read: flatten it into one self-contained image with \`qemu-img convert -O qcow2 ${base} flat.qcow2\` and pass that, or pass --flatten-base to have glint do it`,
  );
}
