/**
 * A deliberately tiny, strict template renderer for the guest-side files
 * (templates/*.tmpl).
 *
 * - A placeholder is `{{NAME}}` with NAME in `[A-Z][A-Z0-9_]*`; any other use
 *   of `{{` in a template is an error, so a typo cannot slip through verbatim.
 * - Every placeholder needs a value and every value a placeholder; a key that
 *   the spec does not know is an error.
 * - Every value must match the anchored regex the spec gives for its key.
 *   The regexes are the identifier formats, so a value can never carry quotes,
 *   `$`, backticks, spaces or newlines into a shell script or YAML file.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GlintError } from "../errors.js";

/** Allowed values per placeholder: an anchored regex (`^…$`, no g/y flag) for each key. */
export type PlaceholderSpec = Readonly<Record<string, RegExp>>;

/** Characters any value may have when it ends up in a shell script. */
export const SHELL_SAFE_RE = /^[A-Za-z0-9:._-]+$/;

const PLACEHOLDER_RE = /\{\{([A-Z][A-Z0-9_]*)\}\}/g;

/** Where the template files live (the package's templates/ directory). */
export const TEMPLATE_DIR = fileURLToPath(new URL("../../templates/", import.meta.url));

const cache = new Map<string, string>();

/** The text of `templates/<name>` (cached). */
export function loadTemplate(name: string): string {
  if (!/^[a-z0-9][a-z0-9_.-]*(\/[a-z0-9][a-z0-9_.-]*)*$/.test(name)) {
    throw new GlintError(`invalid template name ${JSON.stringify(name)}`);
  }
  let text = cache.get(name);
  if (text === undefined) {
    try {
      text = readFileSync(new URL(name, new URL("../../templates/", import.meta.url)), "utf8");
    } catch (error) {
      throw new GlintError(`cannot read template ${name} in ${TEMPLATE_DIR}`, { cause: error });
    }
    cache.set(name, text);
  }
  return text;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function shown(value: string): string {
  return JSON.stringify(value.length > 48 ? `${value.slice(0, 48)}…` : value);
}

/** The placeholder names used in `template`, in order of first use. Throws on a malformed `{{`. */
export function placeholdersOf(template: string, source = "template"): string[] {
  const names: string[] = [];
  let at = template.indexOf("{{");
  while (at !== -1) {
    PLACEHOLDER_RE.lastIndex = at;
    const m = PLACEHOLDER_RE.exec(template);
    if (!m || m.index !== at || m[1] === undefined) {
      const end = template.indexOf("\n", at);
      throw new GlintError(
        `${source}: malformed placeholder at line ${lineOf(template, at)}: ${shown(template.slice(at, end === -1 ? undefined : end))} (use {{NAME}} with NAME in A-Z, 0-9, _)`,
      );
    }
    if (!names.includes(m[1])) names.push(m[1]);
    at = template.indexOf("{{", at + m[0].length);
  }
  return names;
}

/**
 * Render `template`, replacing each `{{NAME}}` with `values[NAME]`.
 * Throws a GlintError, without rendering anything, when a placeholder is
 * malformed or unknown, a value is missing, unknown or does not match its regex.
 */
export function renderTemplate(
  template: string,
  spec: PlaceholderSpec,
  values: Readonly<Record<string, string>>,
  source = "template",
): string {
  for (const [key, re] of Object.entries(spec)) {
    if (!re.source.startsWith("^") || !re.source.endsWith("$") || /[gy]/.test(re.flags)) {
      throw new GlintError(
        `${source}: the pattern for ${key} must be anchored (^…$) without g/y flags`,
      );
    }
  }
  const used = placeholdersOf(template, source);
  for (const name of used) {
    if (!Object.hasOwn(spec, name))
      throw new GlintError(`${source}: unknown placeholder {{${name}}}`);
  }
  for (const key of Object.keys(spec)) {
    if (!used.includes(key)) {
      throw new GlintError(`${source}: the template has no placeholder {{${key}}}`);
    }
  }
  for (const key of Object.keys(values)) {
    if (!Object.hasOwn(spec, key)) throw new GlintError(`${source}: unknown value ${key}`);
  }
  for (const key of used) {
    const value: unknown = Object.hasOwn(values, key) ? values[key] : undefined;
    if (value === undefined) throw new GlintError(`${source}: no value for {{${key}}}`);
    if (typeof value !== "string")
      throw new GlintError(`${source}: the value for {{${key}}} is not a string`);
    const re = spec[key] as RegExp;
    if (!re.test(value)) {
      throw new GlintError(`${source}: value for {{${key}}} is not allowed: ${shown(value)}`);
    }
  }
  // A function replacement: `$&`, `$1`… in a value are not special.
  const out = template.replace(PLACEHOLDER_RE, (_m, key: string) => values[key] as string);
  if (out.includes("{{")) throw new GlintError(`${source}: rendering left a "{{" behind`);
  return out;
}
