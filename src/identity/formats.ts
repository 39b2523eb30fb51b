/**
 * Strict formats for every identifier Glint issues. These are the only
 * gatekeepers between user-controlled files and QEMU options or guest shell
 * scripts, so they are deliberately narrow.
 */
import * as z from "zod";

/** RFC 9562 version 4 UUID, lowercase, variant 10xx. */
export const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * systemd machine-id (machine-id(5)): 32 lowercase hex characters, not all
 * zeros. systemd generates it as a random UUID v4 formatted without dashes,
 * so the version nibble (index 12) is 4 and the variant nibble (index 16) is 8–b.
 */
export const MACHINE_ID_RE = /^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/;

/**
 * A locally administered, unicast MAC, lowercase: the first octet's second
 * hex digit is 2, 6, a or e. Glint draws them under QEMU's 52:54:00 by
 * default, or under a home's `mac_prefix` (see src/registry/config.ts).
 */
export const MAC_RE = /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/;

/** SMBIOS serials: uppercase alphanumeric with a fixed prefix, no commas, ≤ 64 bytes. */
export const CPU_SERIAL_RE = /^CPU[0-9A-Z]{4,32}$/;
export const MB_SERIAL_RE = /^MB[0-9A-Z]{4,32}$/;

/** ISO 8601 date-time with an explicit timezone (Z or ±hh:mm). */
export const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export const uuidV4 = z
  .string()
  .regex(
    UUID_V4_RE,
    "must be a lowercase RFC 9562 version-4 UUID like 3f2b8c1e-9d4a-4e6f-8a7b-1c2d3e4f5a6b",
  );

export const machineId = z
  .string()
  .regex(
    MACHINE_ID_RE,
    "must be 32 lowercase hex characters (a UUID v4 without dashes, as systemd writes /etc/machine-id)",
  );

export const macAddress = z
  .string()
  .regex(
    MAC_RE,
    "must be a lowercase, locally administered unicast MAC such as 52:54:00:xx:xx:xx or 02:xx:xx:xx:xx:xx",
  );

export const cpuSerial = z
  .string()
  .regex(CPU_SERIAL_RE, "must be 'CPU' followed by 4–32 uppercase letters or digits");

export const motherboardSerial = z
  .string()
  .regex(MB_SERIAL_RE, "must be 'MB' followed by 4–32 uppercase letters or digits");

export const timestamp = z
  .string()
  .regex(TIMESTAMP_RE, "must be an ISO 8601 date-time with a timezone, e.g. 2026-01-31T12:00:00Z")
  .refine((s) => !Number.isNaN(Date.parse(s)), "is not a real date");

/** VM names become hostnames and directory names: a hostname label (RFC 1123), lowercase. */
export const VM_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const vmName = z
  .string()
  .regex(
    VM_NAME_RE,
    "must be 1–63 characters of lowercase letters, digits and '-', starting and ending with a letter or digit",
  );

/** Strip dashes so that a machine-id and a UUID with the same bits compare equal. */
export function canonicalHex(value: string): string {
  return value.replaceAll("-", "").toLowerCase();
}

/** The machine-id as a dashed UUID (systemd prints it this way in some tools). */
export function machineIdToUuid(id: string): string {
  return `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20)}`;
}

/** A locally administered unicast MAC prefix: 1 to 5 octets, the first with bit 1 set and bit 0 clear. */
export const MAC_PREFIX_RE = /^[0-9a-f][26ae](:[0-9a-f]{2}){0,4}$/;

export const macPrefix = z
  .string()
  .regex(
    MAC_PREFIX_RE,
    "must be 1–5 lowercase octets of a locally administered unicast MAC, e.g. 02 or 52:54:00",
  );

/**
 * The characters of Glint's serials (SMBIOS strings): digits and uppercase
 * letters, so that no value needs escaping anywhere.
 */
export const SERIAL_CHARS_RE = /^[0-9A-Z]*$/;

/** The fewest random characters a serial format may leave (36^8 ≈ 2.8e12 values). */
export const SERIAL_MIN_RANDOM = 8;

/**
 * A serial format of a template: the characters after Glint's fixed `CPU` /
 * `MB` marker are `prefix` followed by random characters, `length` in all
 * (4–32, as {@link CPU_SERIAL_RE} allows), leaving at least
 * {@link SERIAL_MIN_RANDOM} random ones.
 */
export const serialFormat = z
  .strictObject({
    prefix: z
      .string()
      .max(24)
      .regex(
        SERIAL_CHARS_RE,
        "must be uppercase letters and digits only (the SMBIOS-safe alphabet)",
      ),
    length: z.number().int().min(SERIAL_MIN_RANDOM).max(32),
  })
  .refine((f) => f.length - f.prefix.length >= SERIAL_MIN_RANDOM, {
    message: `must leave at least ${SERIAL_MIN_RANDOM} random characters after the prefix (length − prefix length ≥ ${SERIAL_MIN_RANDOM})`,
  });

export type SerialFormat = z.infer<typeof serialFormat>;

/**
 * An SMBIOS string Glint places in a QEMU `-smbios` option: printable ASCII
 * (no control characters, which SMBIOS strings cannot carry), 1–64
 * characters (the SMBIOS specification's recommended limit), not starting or
 * ending with a space. Commas are allowed: they are doubled for QEMU.
 */
export const SMBIOS_STRING_RE = /^[\x21-\x7e]([\x20-\x7e]{0,62}[\x21-\x7e])?$/;

export const smbiosString = z
  .string()
  .regex(
    SMBIOS_STRING_RE,
    "must be 1–64 printable ASCII characters (no control characters, no leading or trailing space)",
  );

/** An extra OEM string (SMBIOS type 11): printable ASCII, 1–255 characters. */
export const OEM_STRING_RE = /^[\x20-\x7e]{1,255}$/;

export const oemString = z
  .string()
  .regex(OEM_STRING_RE, "must be 1–255 printable ASCII characters (no control characters)");
