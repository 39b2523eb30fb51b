/**
 * `<vm>/shared/identity.env`: the values the guest script applies. The
 * script (assets/guest/set_identifiers.sh) is the same for every VM; this
 * file is what differs. One `KEY=value` line per key, in the order of
 * {@link IDENTITY_ENV_FORMATS}, after `#` comment lines. The script parses it
 * as strictly as {@link parseIdentityEnv} does and never sources it.
 */
import { GlintError } from "../errors.js";
import {
  CPU_SERIAL_RE,
  MAC_RE,
  MACHINE_ID_RE,
  MB_SERIAL_RE,
  UUID_V4_RE,
  VM_NAME_RE,
} from "../identity/formats.js";
import {
  type IdentifierField,
  parseIdentifiers,
  type SystemIdentifiers,
} from "../identity/model.js";
import { assertVmName } from "../vm/layout.js";
import { checkHostnameFrom, type GuestOptions, hostnameFor } from "./hostname.js";

/** An identity generation as identity.env writes it. */
export const GENERATION_RE = /^[1-9][0-9]{0,9}$/;

/**
 * The keys of identity.env, in file order, and the format of each: the VM
 * name, the hostname Glint resolved (the VM name or
 * `glint-<first 8 hex digits of the machine-id>`), every identifier and the
 * generation. The guest script has the same list (its ENV_FORMATS); a unit
 * test compares the two.
 */
export const IDENTITY_ENV_FORMATS = {
  VM_NAME: VM_NAME_RE,
  HOSTNAME: VM_NAME_RE,
  VM_UUID: UUID_V4_RE,
  MACHINE_ID: MACHINE_ID_RE,
  MAC_ADDRESS: MAC_RE,
  DISK_UUID: UUID_V4_RE,
  PARTITION_UUID: UUID_V4_RE,
  FILESYSTEM_UUID: UUID_V4_RE,
  BOOT_UUID: UUID_V4_RE,
  SWAP_UUID: UUID_V4_RE,
  DMI_UUID: UUID_V4_RE,
  SMBIOS_UUID: UUID_V4_RE,
  CPU_SERIAL: CPU_SERIAL_RE,
  MOTHERBOARD_SERIAL: MB_SERIAL_RE,
  BIOS_UUID: UUID_V4_RE,
  VM_GENERATION_ID: UUID_V4_RE,
  GENERATION: GENERATION_RE,
} as const satisfies Record<
  Uppercase<IdentifierField> | "VM_NAME" | "HOSTNAME" | "GENERATION",
  RegExp
>;

export type IdentityEnvKey = keyof typeof IDENTITY_ENV_FORMATS;

/** The keys of identity.env, in file order. */
export const IDENTITY_ENV_KEYS = Object.keys(IDENTITY_ENV_FORMATS) as readonly IdentityEnvKey[];

export type IdentityEnv = Readonly<Record<IdentityEnvKey, string>>;

/**
 * The keys of the record the script writes to `/etc/glint/applied`, in
 * order: identity.env's keys in lowercase (`hostname` is the one applied),
 * then `disk_ids` (`applied` or `pending`) and `applied_at`.
 */
export const APPLIED_RECORD_KEYS: readonly string[] = [
  ...IDENTITY_ENV_KEYS.map((k) => k.toLowerCase()),
  "disk_ids",
  "applied_at",
];

/** Mode of identity.env. */
export const IDENTITY_ENV_MODE = 0o644;

function envValue(
  key: IdentityEnvKey,
  vmName: string,
  hostname: string,
  ids: SystemIdentifiers,
): string {
  if (key === "VM_NAME") return vmName;
  if (key === "HOSTNAME") return hostname;
  if (key === "GENERATION") return String(ids.generation);
  return ids[key.toLowerCase() as Lowercase<typeof key>];
}

/**
 * identity.env's values for `vmName` with identity `ids`. Validates the VM
 * name, the hostname source and every identifier, then each value against
 * its format.
 */
export function identityEnvValues(
  vmName: string,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): IdentityEnv {
  assertVmName(vmName);
  const hostnameFrom = checkHostnameFrom(options.hostnameFrom);
  // A guest-facing edge: public callers may hand in any object.
  const valid = parseIdentifiers(ids as unknown, `identifiers of ${vmName}`);
  const hostname = hostnameFor(vmName, valid, hostnameFrom);
  const out = {} as Record<IdentityEnvKey, string>;
  for (const key of IDENTITY_ENV_KEYS) {
    const value = envValue(key, vmName, hostname, valid);
    if (!IDENTITY_ENV_FORMATS[key].test(value)) {
      throw new GlintError(`identity.env: ${key} ${JSON.stringify(value)} is not allowed`);
    }
    out[key] = value;
  }
  return Object.freeze(out);
}

/** The text of identity.env for `values`. */
export function formatIdentityEnv(values: IdentityEnv): string {
  const lines = [
    `# Identity Glint issued to VM ${values.VM_NAME}, generation ${values.GENERATION}.`,
    "# Read by set_identifiers.sh (next to this file, or --env FILE): one",
    "# KEY=value per line, parsed strictly, never sourced. Do not edit.",
    ...IDENTITY_ENV_KEYS.map((key) => `${key}=${values[key]}`),
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * The text of the guest's `/etc/glint/applied` record for `values`, as
 * set_identifiers.sh writes it once it has applied them (see
 * {@link APPLIED_RECORD_KEYS}). Offline sysprep writes it into the disk, so
 * the first-boot script finds the identity applied and leaves the fresh
 * state of this boot (SSH host keys, the DHCP lease and its DUID) alone.
 */
export function formatAppliedRecord(values: IdentityEnv, at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, "Z");
  const lines = [
    "# Written by glint set_identifiers; do not edit.",
    ...IDENTITY_ENV_KEYS.map((key) => `${key.toLowerCase()}=${values[key]}`),
    "disk_ids=applied",
    `applied_at=${stamp}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** identity.env for `vmName` with identity `ids` (validated first). */
export function renderIdentityEnv(
  vmName: string,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): string {
  return formatIdentityEnv(identityEnvValues(vmName, ids, options));
}

/**
 * Parse identity.env as the guest script does: printable ASCII, `#` comment
 * lines and `KEY=value` lines only, a final newline, every key of
 * {@link IDENTITY_ENV_FORMATS} exactly once with a value in its format, and
 * HOSTNAME the VM name or `glint-<first 8 hex digits of MACHINE_ID>`.
 * Throws a GlintError naming the first problem.
 */
export function parseIdentityEnv(text: string, source = "identity.env"): IdentityEnv {
  const invalid = (message: string) =>
    new GlintError(message, { code: "invalid-file", details: { file: source } });
  if (/[^\n\x20-\x7e]/.test(text)) {
    throw invalid(`${source}: has characters other than printable ASCII and newlines`);
  }
  if (text !== "" && !text.endsWith("\n")) {
    throw invalid(`${source}: the last line does not end with a newline`);
  }
  const out: Partial<Record<IdentityEnvKey, string>> = {};
  const lines = text === "" ? [] : text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const where = `${source} line ${i + 1}`;
    if (line.startsWith("#")) return;
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw invalid(`${where}: not a KEY=value line or a # comment`);
    const key = m[1] as string;
    const value = m[2] as string;
    if (!Object.hasOwn(IDENTITY_ENV_FORMATS, key)) {
      throw invalid(`${where}: unknown key ${key}`);
    }
    const k = key as IdentityEnvKey;
    if (out[k] !== undefined) throw invalid(`${where}: ${key} appears twice`);
    if (!IDENTITY_ENV_FORMATS[k].test(value)) {
      throw invalid(`${where}: ${key} has an invalid value ${JSON.stringify(value)}`);
    }
    out[k] = value;
  });
  for (const key of IDENTITY_ENV_KEYS) {
    if (out[key] === undefined) throw invalid(`${source}: ${key} is missing`);
  }
  const values = out as Record<IdentityEnvKey, string>;
  if (
    values.HOSTNAME !== values.VM_NAME &&
    values.HOSTNAME !== `glint-${values.MACHINE_ID.slice(0, 8)}`
  ) {
    throw invalid(
      `${source}: HOSTNAME must be VM_NAME or glint-<first 8 hex digits of MACHINE_ID>`,
    );
  }
  return Object.freeze(values);
}
