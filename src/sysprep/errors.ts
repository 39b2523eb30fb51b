/** Errors about a disk image, named after the image. */
import { GlintError } from "../errors.js";

/** An invalid-file error about the disk, with the image's name in front. */
export function rethrowNamed(error: unknown, image: string): never {
  if (error instanceof GlintError && error.code === "invalid-file") {
    throw new GlintError(`${image}: ${error.message}`, {
      code: "invalid-file",
      details: { file: image },
      cause: error,
    });
  }
  throw error;
}
