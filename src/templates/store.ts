/**
 * Where templates live: the home's `<home>/.glint/templates/<name>.json`
 * (written atomically by `glint template create|save`) and the predefined
 * ones shipped in the package's assets/templates/. A home template may not
 * take a predefined template's name.
 */
import { existsSync, promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GlintError, glintError, messageOf } from "../errors.js";
import { writeFileAtomic } from "../vm/atomic.js";
import { readFileIfExists, stripBom } from "../vm/fsutil.js";
import { storePaths, templatePath } from "../vm/layout.js";
import { parseTemplate, type Template, templateToJson } from "./schema.js";

/** The package's predefined templates (assets/templates/), found from this module. */
export const BUILTIN_DIR = fileURLToPath(new URL("../../assets/templates/", import.meta.url));

/** The predefined templates, in the order `glint template list` shows them. */
export const BUILTIN_NAMES = ["default", "uefi-secure-tpm", "openstack", "workstation"] as const;

export interface TemplateEntry {
  readonly name: string;
  /** `builtin`: shipped with Glint; `home`: in `<home>/.glint/templates/`. */
  readonly source: "builtin" | "home";
  readonly file: string;
  readonly template: Template;
}

function isBuiltin(name: string): boolean {
  return (BUILTIN_NAMES as readonly string[]).includes(name);
}

function parseText(text: string, file: string): Template {
  let data: unknown;
  try {
    data = JSON.parse(stripBom(text));
  } catch (error) {
    throw new GlintError(`${file}: not valid JSON (${messageOf(error)})`, {
      code: "invalid-file",
      details: { file, reason: "template" },
    });
  }
  return parseTemplate(data, file);
}

function builtin(name: string): TemplateEntry {
  const file = path.join(BUILTIN_DIR, `${name}.json`);
  return { name, source: "builtin", file, template: parseText(readFileSync(file, "utf8"), file) };
}

/** Template `name`: the predefined one of that name, else the home's. */
export async function readTemplate(home: string, name: string): Promise<TemplateEntry> {
  const file = templatePath(home, name);
  if (isBuiltin(name)) return builtin(name);
  const text = await readFileIfExists(file);
  if (text === undefined) {
    throw glintError("not-found", `no template "${name}" (see \`glint template list\`)`, {
      file,
      reason: "template",
    });
  }
  return { name, source: "home", file, template: parseText(text, file) };
}

/** Every template: the predefined ones, then the home's, by name. */
export async function listTemplates(home: string): Promise<TemplateEntry[]> {
  const dir = storePaths(home).templates;
  const names = (await fs.readdir(dir).catch(() => [] as string[]))
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
  const out = BUILTIN_NAMES.map(builtin);
  for (const name of names) {
    if (isBuiltin(name)) continue;
    try {
      out.push(await readTemplate(home, name));
    } catch (error) {
      // A bad file is listed by `template list` as an error of its own; skip it here.
      if (!(error instanceof GlintError)) throw error;
    }
  }
  return out;
}

/**
 * Check what a template refers to: its base image must exist (a file).
 * Throws a GlintError naming it.
 */
export async function checkReferences(t: Template, source: string): Promise<void> {
  if (typeof t.base === "string") {
    const st = await fs.stat(t.base).catch(() => undefined);
    if (!st?.isFile()) {
      throw new GlintError(`${source}: base image ${t.base} does not exist or is not a file`, {
        code: "not-found",
        details: { file: t.base, reason: "template-base" },
      });
    }
  }
}

/**
 * Save template `name` in the home, after validating it and its references.
 * Refuses a predefined name, and an existing template unless `force`.
 */
export async function saveTemplate(
  home: string,
  name: string,
  data: unknown,
  options: { force?: boolean } = {},
): Promise<TemplateEntry> {
  const file = templatePath(home, name);
  if (isBuiltin(name)) {
    throw glintError(
      "conflict",
      `"${name}" is a predefined template; save yours under another name`,
      { reason: "template-builtin" },
    );
  }
  const template = parseTemplate(data, `template "${name}"`);
  await checkReferences(template, `template "${name}"`);
  if (!options.force && existsSync(file)) {
    throw glintError("conflict", `template "${name}" exists already (--force replaces it)`, {
      file,
      reason: "template-exists",
    });
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, templateToJson(template));
  return { name, source: "home", file, template };
}

/** Remove the home's template `name`; a predefined one cannot be removed. */
export async function removeTemplate(home: string, name: string): Promise<string> {
  const file = templatePath(home, name);
  if (isBuiltin(name)) {
    throw glintError("conflict", `"${name}" is a predefined template; it cannot be removed`, {
      reason: "template-builtin",
    });
  }
  try {
    await fs.unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw glintError("not-found", `no template "${name}" in this home`, {
        file,
        reason: "template",
      });
    }
    throw error;
  }
  return file;
}
