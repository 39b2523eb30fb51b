/**
 * Errors that Glint expects and explains. The CLI prints `message` on one line
 * (no stack trace) and exits with `exitCode`.
 */
export class GlintError extends Error {
  /** 1 = an operation failed; 2 = bad usage. */
  readonly exitCode: 1 | 2;

  constructor(message: string, options: { exitCode?: 1 | 2; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "GlintError";
    this.exitCode = options.exitCode ?? 1;
  }
}

/** A VM (or the store) is locked by another live process. */
export class BusyError extends GlintError {
  constructor(message: string) {
    super(message);
    this.name = "BusyError";
  }
}

/** A bad argument from the user: exit code 2. */
export class UsageError extends GlintError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = "UsageError";
  }
}

/** A host tool (qemu-img, swtpm, OVMF, …) is missing. */
export class MissingToolError extends GlintError {
  constructor(tool: string, debianPackage: string) {
    super(`${tool} not found: install it with \`apt-get install ${debianPackage}\``);
    this.name = "MissingToolError";
  }
}
