/** Small file-system queries shared by the firmware, guest and menu code. */
import { promises as fs } from "node:fs";

/** Whether `file` exists and is a regular file (symlinks followed); never throws. */
export async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The text of `file`, or `undefined` if it does not exist (other errors throw). */
export async function readFileIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
