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
    `${file} is a symbolic link: Glint does not follow links it did not create; replace the link with the real file or directory and try again`,
  );
}

/**
 * A GlintError naming `file` (or the error's own path) for the system errors
 * a user can act on; any other error is returned unchanged.
 */
export function systemError(error: unknown, file?: string, action: FsAction = "writing"): unknown {
  const e = errnoOf(error);
  if (!e) return error;
  const where = file ?? e.path ?? (e as { dest?: string }).dest;
  if (where === undefined) return error;
  const glint = (message: string) => new GlintError(message, { cause: error });
  switch (e.code) {
    case "ENOSPC":
      return glint(
        `no space left on the device while ${action} ${where}: free some space and run the command again`,
      );
    case "EDQUOT":
      return glint(
        `disk quota exceeded while ${action} ${where}: free some space (or raise the quota) and run the command again`,
      );
    case "EROFS":
      return glint(
        `${where} is on a read-only file system: remount it read-write, or use a --home on a writable file system`,
      );
    case "EACCES":
    case "EPERM":
      return glint(
        `permission denied while ${action} ${where}: check the owner and mode of that path (glint runs as uid ${process.getuid?.() ?? "?"})`,
      );
    case "EISDIR":
      return glint(
        `${where} is a directory where Glint expects a file: move it out of the way and run the command again`,
      );
    case "ENOTDIR":
      return glint(
        `a part of ${where} is not a directory: move that file out of the way and run the command again`,
      );
    case "ELOOP":
      return symlinkRefused(where);
    case "EIO":
      return glint(
        `input/output error while ${action} ${where}: the disk may be failing; check \`dmesg\``,
      );
    default:
      return error;
  }
}
