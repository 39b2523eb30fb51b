/** The main-thread prime search: OpenSSL's 64-round check agrees, sizes are exact. */
import { checkPrime } from "node:crypto";
import { describe, expect, it } from "vitest";
import { modPow, randomPrime } from "../../src/sysprep/primes.js";

const isPrime = (n: bigint) =>
  new Promise<boolean>((resolve, reject) =>
    checkPrime(n, { checks: 64 }, (err, ok) => (err ? reject(err) : resolve(ok))),
  );

function slowModPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  let x = b % m;
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) r = (r * x) % m;
    x = (x * x) % m;
  }
  return r;
}

describe("primes", () => {
  it("modPow agrees with BigInt arithmetic", () => {
    const m = (1n << 521n) - 1n; // odd (a Mersenne prime)
    for (const [b, e] of [
      [2n, 3n],
      [12345678901234567890n, (1n << 300n) + 12345n],
      [m - 2n, m - 2n],
      [0n, 5n],
    ] as const) {
      expect(modPow(b, e, m)).toBe(slowModPow(b, e, m));
    }
  });

  it("randomPrime gives distinct 1536-bit primes, top two bits set, that OpenSSL confirms", async () => {
    const seen = new Set<bigint>();
    for (let i = 0; i < 3; i++) {
      const p = await randomPrime(1536);
      expect(p.toString(2)).toMatch(/^11[01]{1534}$/);
      expect(await isPrime(p)).toBe(true);
      seen.add(p);
    }
    expect(seen.size).toBe(3);
    // A composite built from two primes never passes.
    const a = await randomPrime(512);
    const b = await randomPrime(512);
    expect(await isPrime(a * b)).toBe(false);
  });

  it("rejects sizes it does not draw", async () => {
    await expect(randomPrime(1535)).rejects.toThrow(RangeError);
  });
});
