/**
 * Per-home registry settings in `<home>/.glint/config.json` (validated by
 * zod): which registry the home uses and its MAC prefix. `--registry` and
 * `GLINT_REGISTRY` override `registry`.
 */
import { promises as fs } from "node:fs";
import * as z from "zod";
import { GlintError, UsageError } from "../errors.js";
import { MAC_PREFIX_RE, macPrefix } from "../identity/formats.js";
import { writeFileAtomic } from "../vm/atomic.js";
import { readFileIfExists, stripBom } from "../vm/fsutil.js";
import { storePaths } from "../vm/layout.js";
import { describeZodError } from "../zod-errors.js";

export { MAC_PREFIX_RE };

export const homeConfigSchema = z
  .object({
    registry: z.string().min(1).optional(),
    mac_prefix: macPrefix.optional(),
  })
  .strict();

export type HomeConfig = z.infer<typeof homeConfigSchema>;

export function homeConfigPath(home: string): string {
  return storePaths(home).config;
}

export async function readHomeConfig(home: string): Promise<HomeConfig> {
  const file = homeConfigPath(home);
  const raw = await readFileIfExists(file);
  if (raw === undefined) return {};
  let data: unknown;
  try {
    data = JSON.parse(stripBom(raw));
  } catch (error) {
    throw new GlintError(`${file} is not valid JSON (${(error as Error).message})`, {
      code: "invalid-file",
      details: { file },
    });
  }
  const parsed = homeConfigSchema.safeParse(data);
  if (!parsed.success) {
    throw new GlintError(`${file}: ${describeZodError(parsed.error)}`, {
      code: "invalid-file",
      details: { file },
    });
  }
  return parsed.data;
}

export async function writeHomeConfig(home: string, config: HomeConfig): Promise<void> {
  const parsed = homeConfigSchema.safeParse(config);
  if (!parsed.success) throw new UsageError(describeZodError(parsed.error));
  await fs.mkdir(storePaths(home).dir, { recursive: true });
  await writeFileAtomic(homeConfigPath(home), `${JSON.stringify(parsed.data, null, 2)}\n`);
}
