/**
 * Errors that Glint expects. Each carries a stable `code` that callers can
 * branch on, and facts (`details`) about what went wrong. The library says
 * what happened; only the CLI (src/cli/advice.ts) turns a code and its
 * details into advice on what to do next.
 */

/** Stable error codes; `--json` prints them, and they never change meaning. */
export const ERROR_CODES = [
  /** Bad arguments or options (exit code 2). */
  "usage",
  /** The VM, file or value asked for does not exist. */
  "not-found",
  /** The VM or store is held by another live process (or its QEMU runs). */
  "busy",
  /** A host tool (qemu-img, swtpm, OVMF, …) is missing. */
  "missing-tool",
  /** A file Glint reads is not valid (not JSON, wrong fields, a symlink). */
  "invalid-file",
  /** An earlier operation on the VM was interrupted and must be finished first. */
  "interrupted",
  /** The request conflicts with existing state (exists already, duplicate value). */
  "conflict",
  /** The VM lacks what the operation needs (no TPM, BIOS firmware, …). */
  "unsupported",
  /** An external tool failed. */
  "tool-failed",
  /** The operating system refused (no space, read-only, permissions). */
  "io",
  /** The registry of issued values (SQLite or PostgreSQL) is unreachable or refused; nothing was changed. */
  "registry",
  /** The user cancelled at a prompt; nothing was changed. */
  "cancelled",
  /** Anything else that failed. */
  "failed",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Facts about a failure that the CLI uses to advise. `reason` narrows the
 * code (e.g. `no-identifiers` under `not-found`).
 */
export interface ErrorDetails {
  readonly vm?: string;
  readonly file?: string;
  readonly tool?: string;
  readonly debianPackage?: string;
  readonly reason?: string;
  /** For `interrupted`: the command whose operation was interrupted. */
  readonly operation?: string;
  /** For `busy`: the process holding the VM and what for. */
  readonly pid?: number;
  readonly purpose?: string;
}

export interface GlintErrorOptions {
  code?: ErrorCode;
  details?: ErrorDetails;
  cause?: unknown;
}

/** An error Glint expects and explains: one line, a code, an exit code. */
export class GlintError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(message: string, options: GlintErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "GlintError";
    this.code = options.code ?? "failed";
    this.details = options.details ?? {};
  }

  /** 2 for bad usage, 1 for everything else. */
  get exitCode(): 1 | 2 {
    return this.code === "usage" ? 2 : 1;
  }
}

/** A VM (or the store) is locked by another live process. */
export class BusyError extends GlintError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { code: "busy", details });
    this.name = "BusyError";
  }
}

/** A bad argument from the user: exit code 2. */
export class UsageError extends GlintError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { code: "usage", details });
    this.name = "UsageError";
  }
}

/** A host tool (qemu-img, swtpm, OVMF, …) is missing. */
export class MissingToolError extends GlintError {
  constructor(tool: string, debianPackage: string) {
    super(`${tool} not found`, { code: "missing-tool", details: { tool, debianPackage } });
    this.name = "MissingToolError";
  }
}

/** Build a GlintError with a code in one expression. */
export function glintError(
  code: ErrorCode,
  message: string,
  details: ErrorDetails = {},
): GlintError {
  return new GlintError(message, { code, details });
}

/** The message of any thrown value, first line only. */
export function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
