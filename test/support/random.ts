/**
 * Deterministic and replaying RandomSources for the tests: each takes the
 * place of node:crypto's randomBytes where a test must know, or repeat,
 * what the generators draw.
 */
import { createHash, randomBytes } from "node:crypto";
import type { RandomSource } from "../../src/identity/index.js";

/** A deterministic RandomSource: SHA-256 in counter mode over `seed`. */
export function seededRandom(seed: number | string): RandomSource {
  let counter = 0;
  let pool = Buffer.alloc(0);
  return (n) => {
    while (pool.length < n) {
      const block = createHash("sha256").update(`${seed}:${counter++}`).digest();
      pool = Buffer.concat([pool, block]);
    }
    const out = pool.subarray(0, n);
    pool = pool.subarray(n);
    return new Uint8Array(out);
  };
}

/**
 * A RandomSource that hands out the given buffers in order (one per call,
 * each of exactly the requested length), then falls back to `fallback`.
 * `calls` records every requested length.
 */
export function queueRandom(
  buffers: readonly Uint8Array[],
  fallback: (n: number) => Uint8Array = (n) => randomBytes(n),
): { random: (n: number) => Uint8Array; calls: number[]; remaining: () => number } {
  const queue = [...buffers];
  const calls: number[] = [];
  return {
    calls,
    remaining: () => queue.length,
    random: (n) => {
      calls.push(n);
      const next = queue.shift();
      if (next === undefined) return fallback(n);
      if (next.length !== n) {
        throw new Error(`queueRandom: queued buffer has ${next.length} bytes but ${n} were asked`);
      }
      return Uint8Array.from(next);
    },
  };
}

/**
 * A RandomSource that first serves `bytes` (a stream, split as requested),
 * then a deterministic pseudo-random stream (SHA-256 of `salt` and a
 * counter) so that it never runs dry. Same arguments → same output.
 */
export function streamRandom(bytes: Uint8Array, salt = ""): (n: number) => Uint8Array {
  let pos = 0;
  let counter = 0;
  let pool: Uint8Array = new Uint8Array(0);
  let poolPos = 0;
  const next = (): number => {
    if (pos < bytes.length) return bytes[pos++] ?? 0;
    if (poolPos >= pool.length) {
      pool = createHash("sha256").update(`${salt}:${counter++}`).digest();
      poolPos = 0;
    }
    return pool[poolPos++] ?? 0;
  };
  return (n) => Uint8Array.from({ length: n }, next);
}

/**
 * A RandomSource whose first 3-byte draw (the MAC's random part) replays the
 * last three octets of `mac`; everything else is random. `replayed()` says
 * whether that draw happened.
 */
export function macReplay(mac: string): {
  random: (n: number) => Uint8Array;
  replayed: () => boolean;
} {
  const bytes = Uint8Array.from(
    mac
      .split(":")
      .slice(3)
      .map((h) => Number.parseInt(h, 16)),
  );
  let done = false;
  return {
    replayed: () => done,
    random: (n) => {
      if (n === 3 && !done) {
        done = true;
        return Uint8Array.from(bytes);
      }
      return randomBytes(n);
    },
  };
}
