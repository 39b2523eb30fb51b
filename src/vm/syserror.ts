/**
 * Raw system errors (ENOSPC, EROFS, EACCES, EISDIR, …) turned into one-line
 * GlintErrors that name the path and say what to do. The one place that
 * words them: the file helpers call it where they know the path, and the CLI
 * calls it for anything that still escapes.
 */
import { GlintError } from "../errors.js";

/** What Glint was doing with the path, for the message ("writing", "reading", …). */
export type FsAction = "reading" | "writing" | "creating" | "replacing" | "removing";

function errnoOf(error: unknown): NodeJS.ErrnoException | undefined {
  if (!(error instanceof Error)) return undefined;
  const e = error as NodeJS.ErrnoException;
  return typeof e.code === "string" && /^E[A-Z0-9]+$/.test(e.code) ? e : undefined;
}

/** The refusal for a symlink Glint did not create (Glint never follows one). */
export function symlinkRefused(file: string): GlintError {
  return new GlintError(
    `${file} is a symbolic link: Glint does not follow links it did not create`,
    { code: "invalid-file", details: { file, reason: "symlink" } },
  );
}

/** What happened, per errno; the CLI's advice (src/cli/advice.ts) says what to do. */
const WHAT: Record<string, (where: string, action: FsAction) => string> = {
  ENOSPC: (w, a) => `no space left on the device while ${a} ${w}`,
  EDQUOT: (w, a) => `disk quota exceeded while ${a} ${w}`,
  EROFS: (w) => `${w} is on a read-only file system`,
  EACCES: (w, a) => `permission denied while ${a} ${w}`,
  EPERM: (w, a) => `operation not permitted while ${a} ${w}`,
  EISDIR: (w) => `${w} is a directory where Glint expects a file`,
  ENOTDIR: (w) => `a part of ${w} is not a directory`,
  EIO: (w, a) => `input/output error while ${a} ${w}`,
};

/**
 * A GlintError (code `io`, reason the errno in lowercase) naming `file` (or
 * the error's own path) for the system errors a user can act on; any other
 * error is returned unchanged.
 */
export function systemError(error: unknown, file?: string, action: FsAction = "writing"): unknown {
  const e = errnoOf(error);
  if (!e?.code) return error;
  const where = file ?? e.path ?? (e as { dest?: string }).dest;
  if (where === undefined) return error;
  if (e.code === "ELOOP") return symlinkRefused(where);
  const what = WHAT[e.code];
  if (what === undefined) return error;
  return new GlintError(what(where, action), {
    code: "io",
    details: { file: where, reason: e.code.toLowerCase() },
    cause: error,
  });
}
