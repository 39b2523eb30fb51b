/**
 * Private, minimal host-tool finder for tools that src/qemu/tools.ts's
 * `requireTool` does not know (swtpm_localca). Searches `$PATH` like execvp.
 */
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { MissingToolError } from "../errors.js";

/** Absolute path of executable `name` on `env.PATH`, else MissingToolError naming `debianPackage`. */
export async function findTool(
  name: string,
  debianPackage: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const dirs = (env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":")
    .filter((d) => d !== "");
  for (const dir of dirs) {
    const candidate = path.resolve(dir, name);
    try {
      const st = await fs.stat(candidate);
      if (!st.isFile()) continue;
      await fs.access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new MissingToolError(name, debianPackage);
}
