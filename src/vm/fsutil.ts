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
