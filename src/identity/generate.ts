/**
 * Draws new identifier values. All randomness comes from `node:crypto`
 * unless a test injects its own {@link RandomSource}.
 */
import { randomBytes } from "node:crypto";
import type { SerialFormat } from "./formats.js";
import type { IdentifierField } from "./model.js";
import { uuidV4FromBytes } from "./model.js";

/** Returns `n` random bytes. The default is `crypto.randomBytes`. */
export type RandomSource = (n: number) => Uint8Array;

export const cryptoRandom: RandomSource = (n) => randomBytes(n);

/**
 * `crypto.randomBytes` drawn `chunk` bytes at a time (for drawing many
 * identities at once: one system call per chunk instead of per value).
 */
export function bufferedCryptoRandom(chunk = 64 * 1024): RandomSource {
  let buf = new Uint8Array(0);
  let at = 0;
  return (n) => {
    if (n > chunk) return randomBytes(n);
    if (at + n > buf.length) {
      buf = randomBytes(chunk);
      at = 0;
    }
    at += n;
    return buf.slice(at - n, at);
  };
}

const SERIAL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/** Serial length after the prefix: 16 base-36 characters ≈ 82 bits. */
export const SERIAL_LENGTH = 16;

function need(random: RandomSource, n: number): Uint8Array {
  const b = random(n);
  if (b.length < n) throw new RangeError(`random source returned ${b.length} bytes, wanted ${n}`);
  return b;
}

export function newUuidV4(random: RandomSource = cryptoRandom): string {
  return uuidV4FromBytes(need(random, 16));
}

/** A machine-id as systemd makes one: a random v4 UUID as 32 hex characters. */
export function newMachineId(random: RandomSource = cryptoRandom): string {
  return newUuidV4(random).replaceAll("-", "");
}

/** QEMU's locally administered, unicast prefix. */
export const DEFAULT_MAC_PREFIX = "52:54:00";

/**
 * `prefix` (1–5 octets; 52:54:00 by default) plus random octets: 24 random
 * bits under 52:54:00, 40 under a one-octet prefix such as 02.
 */
export function newMacAddress(
  random: RandomSource = cryptoRandom,
  prefix: string = DEFAULT_MAC_PREFIX,
): string {
  const octets = prefix.split(":").length;
  const b = need(random, 6 - octets);
  return `${prefix}:${Array.from(b.subarray(0, 6 - octets), (x) => x.toString(16).padStart(2, "0")).join(":")}`;
}

/**
 * The marker, then {@link SERIAL_LENGTH} uniform base-36 characters
 * (rejection sampling, no modulo bias); with a template's `format`, the
 * marker, the format's prefix, then random characters up to its length.
 */
export function newSerial(
  marker: "CPU" | "MB",
  random: RandomSource = cryptoRandom,
  format?: SerialFormat,
): string {
  const head = `${marker}${format?.prefix ?? ""}`;
  const total = marker.length + (format?.length ?? SERIAL_LENGTH);
  let out = head;
  while (out.length < total) {
    for (const byte of need(random, total - head.length)) {
      // 252 = 7 * 36: values ≥ 252 are rejected to keep the distribution uniform.
      if (byte < 252 && out.length < total) out += SERIAL_ALPHABET[byte % 36];
    }
  }
  return out;
}

/** A VM's serial formats (from its template); each missing one is the default. */
export interface SerialFormats {
  readonly cpu?: SerialFormat | undefined;
  readonly motherboard?: SerialFormat | undefined;
}

/** Draw one new value for the given identifier field. */
export function drawIdentifier(
  field: IdentifierField,
  random: RandomSource = cryptoRandom,
  macPrefix: string = DEFAULT_MAC_PREFIX,
  serials: SerialFormats = {},
): string {
  switch (field) {
    case "machine_id":
      return newMachineId(random);
    case "mac_address":
      return newMacAddress(random, macPrefix);
    case "cpu_serial":
      return newSerial("CPU", random, serials.cpu);
    case "motherboard_serial":
      return newSerial("MB", random, serials.motherboard);
    default:
      return newUuidV4(random);
  }
}
