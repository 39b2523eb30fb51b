/**
 * The identity of one VM, as stored in `<home>/<vm>/identifiers.json`.
 *
 * Field names stay snake_case so that the file keeps the seed prototype's
 * format; a file written by the prototype (no `schema_version`) still loads.
 */
import { createHash } from "node:crypto";
import * as z from "zod";
import { GlintError } from "../errors.js";
import { describeZodError } from "../zod-errors.js";
import {
  cpuSerial,
  macAddress,
  machineId,
  motherboardSerial,
  timestamp,
  uuidV4,
} from "./formats.js";

export const SCHEMA_VERSION = 1;

/** The largest `generation`: 10 digits, as the guest script and seed templates check. */
export const MAX_GENERATION = 9_999_999_999;

/** The identifiers proper: every field that is drawn at random. */
export const IDENTIFIER_FIELDS = [
  "vm_uuid",
  "machine_id",
  "mac_address",
  "disk_uuid",
  "partition_uuid",
  "filesystem_uuid",
  "boot_uuid",
  "swap_uuid",
  "dmi_uuid",
  "smbios_uuid",
  "cpu_serial",
  "motherboard_serial",
  "bios_uuid",
  "vm_generation_id",
] as const;

export type IdentifierField = (typeof IDENTIFIER_FIELDS)[number];

/**
 * MACs of a VM's NICs after the first (`glint create --nics N`, extra `-nic`
 * arguments), in NIC order. Optional: files without it still load.
 */
export const EXTRA_MACS = "extra_macs";
/** At most this many extra NICs (QEMU's PCI slots are better spent otherwise). */
export const MAX_EXTRA_MACS = 15;
/** Every field that holds a unique value: the identifiers and the extra MACs. */
export type ValueField = IdentifierField | typeof EXTRA_MACS;

const identifierShape = {
  vm_uuid: uuidV4,
  machine_id: machineId,
  mac_address: macAddress,
  disk_uuid: uuidV4,
  partition_uuid: uuidV4,
  filesystem_uuid: uuidV4,
  boot_uuid: uuidV4,
  swap_uuid: uuidV4,
  dmi_uuid: uuidV4,
  smbios_uuid: uuidV4,
  cpu_serial: cpuSerial,
  motherboard_serial: motherboardSerial,
  bios_uuid: uuidV4,
  vm_generation_id: uuidV4,
};

/** The current on-disk schema (version 1). */
export const systemIdentifiersSchema = z.strictObject({
  schema_version: z.literal(SCHEMA_VERSION),
  ...identifierShape,
  /** Bumped on every regeneration; feeds the cloud-init instance-id. */
  generation: z.number().int().min(1).max(MAX_GENERATION),
  created_at: timestamp,
  updated_at: timestamp,
  [EXTRA_MACS]: z.array(macAddress).max(MAX_EXTRA_MACS).optional(),
});

declare const validated: unique symbol;

/**
 * A validated identity. Only the parser ({@link parseIdentifiers}) and the
 * policy engine (src/identity/regenerate.ts) produce one, so code that takes
 * a SystemIdentifiers never checks its formats again.
 */
export type SystemIdentifiers = Readonly<z.infer<typeof systemIdentifiersSchema>> & {
  readonly [validated]: true;
};

/** Marks values the policy engine drew (each from a validated generator) as a validated identity. */
export function sealIdentifiers(
  values: z.infer<typeof systemIdentifiersSchema>,
): SystemIdentifiers {
  return Object.freeze(values) as SystemIdentifiers;
}

/**
 * The seed prototype's format: no schema_version, vm_generation_id, generation
 * or updated_at, and a timestamp that may lack a timezone (Python's naive
 * `datetime.now().isoformat()`), which is read as UTC.
 */
const NAIVE_TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$/;
const legacySchema = z.strictObject({
  ...identifierShape,
  vm_generation_id: uuidV4.optional(),
  created_at: z.union([
    timestamp,
    z
      .string()
      .regex(NAIVE_TIMESTAMP_RE, "must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
      .refine((s) => !Number.isNaN(Date.parse(`${s}Z`)), "is not a real date")
      .transform((s) => `${s}Z`),
  ]),
});

/**
 * A stable vm_generation_id for a seed-format file that has none, derived from
 * its vm_uuid, so that loading a file is a pure function.
 */
function derivedGenerationId(vmUuid: string): string {
  const b = createHash("sha256").update(`glint-vmgenid:${vmUuid}`).digest();
  return uuidV4FromBytes(b);
}

/** Format 16 bytes as a UUID v4 (sets the version and variant bits). */
export function uuidV4FromBytes(bytes: Uint8Array): string {
  if (bytes.length < 16) throw new RangeError("uuidV4FromBytes needs 16 bytes");
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Parse and validate an identifiers object (current or seed format).
 * Throws a GlintError naming the first bad fields.
 * @param source  Shown in the error, e.g. the file path.
 */
export function parseIdentifiers(
  data: unknown,
  source = "identifiers",
  vmName?: string,
): SystemIdentifiers {
  const invalid = (why: string, reason = "identifiers") =>
    new GlintError(`${source}: ${why}`, {
      code: "invalid-file",
      details: { file: source, reason, ...(vmName === undefined ? {} : { vm: vmName }) },
    });
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw invalid("expected a JSON object");
  }
  const obj = data as Record<string, unknown>;
  if ("schema_version" in obj) {
    if (typeof obj.schema_version === "number" && obj.schema_version > SCHEMA_VERSION) {
      throw invalid(
        `schema_version ${obj.schema_version} was written by a newer Glint`,
        "newer-schema",
      );
    }
    const r = systemIdentifiersSchema.safeParse(obj);
    if (!r.success) throw invalid(describeZodError(r.error, obj));
    return sealIdentifiers(r.data);
  }
  const r = legacySchema.safeParse(obj);
  if (!r.success) throw invalid(describeZodError(r.error, obj));
  const { vm_generation_id, ...rest } = r.data;
  return sealIdentifiers({
    schema_version: SCHEMA_VERSION,
    ...rest,
    vm_generation_id: vm_generation_id ?? derivedGenerationId(rest.vm_uuid),
    generation: 1,
    updated_at: rest.created_at,
  });
}

/** Key order used when writing identifiers.json: the seed's order, then Glint's additions. */
const KEY_ORDER = [
  "schema_version",
  ...IDENTIFIER_FIELDS,
  "generation",
  "created_at",
  "updated_at",
] as const satisfies readonly (keyof SystemIdentifiers)[];

/** A plain object in file order (the seed's `to_dict`); `extra_macs` last, when there are any. */
export function identifiersToDict(
  ids: SystemIdentifiers,
): Record<string, string | number | string[]> {
  const out: Record<string, string | number | string[]> = {};
  for (const k of KEY_ORDER) out[k] = ids[k];
  const extra = ids[EXTRA_MACS];
  if (extra !== undefined && extra.length > 0) out[EXTRA_MACS] = [...extra];
  return out;
}

/** The extra NICs' MACs (none when the file has no `extra_macs`). */
export function extraMacsOf(ids: SystemIdentifiers): readonly string[] {
  return ids[EXTRA_MACS] ?? [];
}

/**
 * Every unique value in a (possibly invalid) identifiers object, with its
 * field: the identifiers, then each extra MAC. What the home scan and the
 * registry count as held.
 */
export function valueEntries(data: unknown): [ValueField, string][] {
  if (data === null || typeof data !== "object") return [];
  const record = data as Record<string, unknown>;
  const out: [ValueField, string][] = [];
  for (const f of IDENTIFIER_FIELDS) {
    const v = record[f];
    if (typeof v === "string") out.push([f, v]);
  }
  const extra = record[EXTRA_MACS];
  if (Array.isArray(extra)) {
    for (const v of extra) if (typeof v === "string") out.push([EXTRA_MACS, v]);
  }
  return out;
}

/** The seed's `SystemIdentifiers` class methods, in TypeScript naming. */
export const SystemIdentifiers = {
  parse: parseIdentifiers,
  fromDict: (data: unknown): SystemIdentifiers => parseIdentifiers(data),
  toDict: identifiersToDict,
  toJSON: (ids: SystemIdentifiers): string =>
    `${JSON.stringify(identifiersToDict(ids), null, 2)}\n`,
} as const;
