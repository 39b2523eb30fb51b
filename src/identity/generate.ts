/**
 * Draws new identifier values. All randomness comes from `node:crypto`
 * unless a test injects its own {@link RandomSource}.
 */
import { randomBytes } from "node:crypto";
import type { IdentifierField } from "./model.js";
import { uuidV4FromBytes } from "./model.js";

/** Returns `n` random bytes. The default is `crypto.randomBytes`. */
export type RandomSource = (n: number) => Uint8Array;

export const cryptoRandom: RandomSource = (n) => randomBytes(n);

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

/** 52:54:00 (QEMU's locally administered, unicast prefix) plus 24 random bits. */
export function newMacAddress(random: RandomSource = cryptoRandom): string {
  const b = need(random, 3);
  return `52:54:00:${Array.from(b.subarray(0, 3), (x) => x.toString(16).padStart(2, "0")).join(":")}`;
}

/** Prefix + {@link SERIAL_LENGTH} uniform base-36 characters (rejection sampling, no modulo bias). */
export function newSerial(prefix: "CPU" | "MB", random: RandomSource = cryptoRandom): string {
  let out = prefix;
  while (out.length < prefix.length + SERIAL_LENGTH) {
    for (const byte of need(random, SERIAL_LENGTH)) {
      // 252 = 7 * 36: values ≥ 252 are rejected to keep the distribution uniform.
      if (byte < 252 && out.length < prefix.length + SERIAL_LENGTH)
        out += SERIAL_ALPHABET[byte % 36];
    }
  }
  return out;
}

/** Draw one new value for the given identifier field. */
export function drawIdentifier(
  field: IdentifierField,
  random: RandomSource = cryptoRandom,
): string {
  switch (field) {
    case "machine_id":
      return newMachineId(random);
    case "mac_address":
      return newMacAddress(random);
    case "cpu_serial":
      return newSerial("CPU", random);
    case "motherboard_serial":
      return newSerial("MB", random);
    default:
      return newUuidV4(random);
  }
}
