/**
 * The CLI's config file: `$XDG_CONFIG_HOME/glint/config.toml` (default
 * `~/.config/glint/config.toml`), or `/etc/glint/config.toml` for root. Only
 * one key is read, `home`:
 *
 *     # where glint keeps its VMs
 *     home = "/srv/vms"
 *
 * The home is `--home`, else `$GLINT_HOME`, else `home` from this file, else
 * `./vms_linux`. The parser is strict and minimal (comments, blank lines and
 * `key = "string"` lines; anything else is an error naming the line), and
 * the result is checked with zod.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as z from "zod";
import { GlintError } from "../errors.js";

const configSchema = z.strictObject({ home: z.string().min(1).optional() });
export type CliConfig = z.infer<typeof configSchema>;

/** The config file for this user, or undefined when there is no place for one. */
export function configPath(env: NodeJS.ProcessEnv): string | undefined {
  if (process.getuid?.() === 0 && !env.XDG_CONFIG_HOME) return "/etc/glint/config.toml";
  const base = env.XDG_CONFIG_HOME || (env.HOME ? path.join(env.HOME, ".config") : os.homedir());
  return base ? path.join(base, "glint", "config.toml") : undefined;
}

/** Parses the subset of TOML the config file uses. */
export function parseConfig(text: string, file: string): CliConfig {
  const out: Record<string, string> = {};
  for (const [i, raw] of text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z0-9_-]+)\s*=\s*"((?:[^"\\]|\\["\\])*)"\s*(?:#.*)?$/.exec(line);
    if (!m?.[1]) {
      throw new GlintError(`${file}:${i + 1}: expected key = "value"`, {
        code: "invalid-file",
        details: { file },
      });
    }
    out[m[1]] = (m[2] ?? "").replace(/\\(["\\])/g, "$1");
  }
  const parsed = configSchema.safeParse(out);
  if (!parsed.success) {
    throw new GlintError(
      `${file}: ${parsed.error.issues.map((x) => `${x.path.join(".") || "file"}: ${x.message}`).join("; ")}`,
      { code: "invalid-file", details: { file } },
    );
  }
  return parsed.data;
}

/** `home` from the config file (relative to the file's directory), if set. */
export function configuredHome(env: NodeJS.ProcessEnv): string | undefined {
  const file = configPath(env);
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const { home } = parseConfig(text, file);
  return home === undefined ? undefined : path.resolve(path.dirname(file), home);
}
