/**
 * An identity template: how a VM's identity and hardware look, stored as
 * validated JSON in `<home>/.glint/templates/<name>.json` (or shipped in the
 * package's assets/templates/). Every field is optional: a VM created from a
 * template takes each field the template sets, unless the create command
 * sets it itself.
 */
import * as z from "zod";
import { GlintError } from "../errors.js";
import { macPrefix } from "../identity/formats.js";
import {
  CLOUD_PROFILES,
  DISK_SIZE_RE,
  extraOemStrings,
  FIRMWARE_KINDS,
  HOSTNAME_SOURCES,
  hostnamePattern,
  MAX_NICS,
  NET_MODES,
  serialFormatsSchema,
  smbiosStringsSchema,
} from "../vm/config.js";
import { describeZodError } from "../zod-errors.js";

export const TEMPLATE_SCHEMA_VERSION = 1;

/** A description shown by `glint template list`: one line of printable text. */
const description = z
  .string()
  .regex(/^[\x20-\x7e]{1,200}$/, "must be 1–200 printable ASCII characters on one line");

export const templateSchema = z.strictObject({
  schema_version: z.literal(TEMPLATE_SCHEMA_VERSION),
  description: description.optional(),
  firmware: z.enum(FIRMWARE_KINDS).optional(),
  tpm: z.boolean().optional(),
  tpm_model: z.enum(["tpm-crb", "tpm-tis"]).optional(),
  memory_mb: z.number().int().min(16).max(1048576).optional(),
  cpus: z.number().int().min(1).max(255).optional(),
  nics: z.number().int().min(1).max(MAX_NICS).optional(),
  net: z.enum(NET_MODES).optional(),
  /** Base image (qcow2), an absolute path; it must exist when the template is saved. */
  base: z.string().startsWith("/", "must be an absolute path").nullable().optional(),
  overlay: z.boolean().optional(),
  disk_size: z.string().regex(DISK_SIZE_RE, "must be a size like 512M or 8G").optional(),
  hostname_from: z.enum(HOSTNAME_SOURCES).optional(),
  hostname_pattern: hostnamePattern.optional(),
  mac_prefix: macPrefix.optional(),
  serial_formats: serialFormatsSchema.optional(),
  smbios: smbiosStringsSchema.optional(),
  oem_strings: extraOemStrings.optional(),
  cloud: z.enum(CLOUD_PROFILES).optional(),
});

export type Template = z.infer<typeof templateSchema>;

/** Validate `data` as a template; the error names `source` and the first bad fields. */
export function parseTemplate(data: unknown, source: string): Template {
  const r = templateSchema.safeParse(data);
  if (!r.success) {
    throw new GlintError(`${source}: ${describeZodError(r.error, data)}`, {
      code: "invalid-file",
      details: { file: source, reason: "template" },
    });
  }
  const t = r.data;
  if (t.overlay && (t.base === undefined || t.base === null)) {
    throw new GlintError(`${source}: "overlay" needs a "base" image`, {
      code: "invalid-file",
      details: { file: source, reason: "template" },
    });
  }
  if (t.disk_size !== undefined && t.base) {
    throw new GlintError(`${source}: "disk_size" makes a blank disk; it cannot go with "base"`, {
      code: "invalid-file",
      details: { file: source, reason: "template" },
    });
  }
  if ((t.nics ?? 1) > 1 && t.net !== undefined && t.net !== "user") {
    throw new GlintError(`${source}: more than one NIC needs "net": "user"`, {
      code: "invalid-file",
      details: { file: source, reason: "template" },
    });
  }
  return t;
}

/** Key order of a written template. */
const KEY_ORDER = Object.keys(templateSchema.shape) as (keyof Template)[];

/** The template as the JSON text Glint writes. */
export function templateToJson(t: Template): string {
  const out: Record<string, unknown> = {};
  for (const k of KEY_ORDER) if (t[k] !== undefined) out[k] = t[k];
  return `${JSON.stringify(out, null, 2)}\n`;
}
