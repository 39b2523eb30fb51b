/**
 * Random probable primes for RSA keys, drawn on the main thread in small
 * slices (it mostly waits on tools during a sysprep run) while
 * crypto.generatePrime draws the other prime on the thread pool.
 *
 * OpenSSL 3's own search confirms every prime with 64 Miller-Rabin rounds,
 * whatever the size (about 90 ms for a 1536-bit prime here, 40% of its
 * cost). For a randomly chosen 1536-bit candidate, FIPS 186-5 (table B.1)
 * asks for 4 rounds for an error probability of 2^-128 (3 for 2^-100); this
 * search does 1 + 6. Candidates come from a sieve by the odd primes below
 * 2^14; each modular exponentiation is OpenSSL's (the RSA public operation
 * without padding is exactly base^exp mod n), the few squarings are BigInt.
 */
import { constants, createPublicKey, publicEncrypt, randomBytes } from "node:crypto";
import { setImmediate as nextTurn } from "node:timers/promises";

const SIEVE_LIMIT = 1 << 14;
const WINDOW = 4096;
/** Random-base rounds after the base-2 round. */
const ROUNDS = 6;

const SMALL_PRIMES: readonly number[] = (() => {
  const composite = new Uint8Array(SIEVE_LIMIT);
  const out: number[] = [];
  for (let i = 3; i < SIEVE_LIMIT; i += 2) {
    if (composite[i]) continue;
    out.push(i);
    for (let j = i * i; j < SIEVE_LIMIT; j += 2 * i) composite[j] = 1;
  }
  return out;
})();

const hex = (v: bigint): string => {
  const h = v.toString(16);
  return h.length % 2 ? `0${h}` : h;
};
const big = (b: Buffer): bigint => BigInt(`0x${b.toString("hex") || "0"}`);

/** base^exp mod m for an odd m > exp, m > base, through OpenSSL's Montgomery exponentiation. */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  const mHex = hex(m);
  const len = mHex.length / 2;
  const key = createPublicKey({
    key: {
      kty: "RSA",
      n: Buffer.from(mHex, "hex").toString("base64url"),
      e: Buffer.from(hex(exp), "hex").toString("base64url"),
    },
    format: "jwk",
  });
  const input = Buffer.from(hex(base).padStart(len * 2, "0"), "hex");
  return big(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, input));
}

/** One Miller-Rabin round of odd n > 3 with base a (1 < a < n - 1). */
function mrRound(n: bigint, d: bigint, s: number, a: bigint): boolean {
  let x = modPow(a, d, n);
  if (x === 1n || x === n - 1n) return true;
  for (let i = 1; i < s; i++) {
    x = (x * x) % n;
    if (x === n - 1n) return true;
    if (x === 1n) return false;
  }
  return false;
}

/** A uniformly random base in [2, n - 2]. */
function randomBase(n: bigint, bytes: number): bigint {
  return 2n + (big(randomBytes(bytes + 8)) % (n - 3n));
}

/** Whether odd `n` passes base 2 and ROUNDS random bases (yielding between rounds). */
async function probablePrime(n: bigint, bytes: number): Promise<boolean> {
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  if (!mrRound(n, d, s, 2n)) return false;
  for (let r = 0; r < ROUNDS; r++) {
    await nextTurn();
    if (!mrRound(n, d, s, randomBase(n, bytes))) return false;
  }
  return true;
}

/** A random probable prime of exactly `bits` bits (a multiple of 8), its top two bits set. */
export async function randomPrime(bits: number): Promise<bigint> {
  if (bits % 8 !== 0 || bits < 256) throw new RangeError(`randomPrime: ${bits} bits`);
  const bytes = bits / 8;
  for (;;) {
    const r = randomBytes(bytes);
    r[0] = (r[0] ?? 0) | 0xc0;
    r[bytes - 1] = (r[bytes - 1] ?? 0) | 1;
    const x0 = big(r);
    // Offsets k in the window with x0 + 2k divisible by a small prime.
    const out = new Uint8Array(WINDOW);
    for (const p of SMALL_PRIMES) {
      const rem = Number(x0 % BigInt(p));
      // 2k ≡ -rem (mod p)  ⇔  k ≡ (p - rem) · (p + 1)/2 (mod p)
      for (let k = ((p - rem) * ((p + 1) / 2)) % p; k < WINDOW; k += p) out[k] = 1;
    }
    for (let k = 0; k < WINDOW; k++) {
      if (out[k]) continue;
      const c = x0 + 2n * BigInt(k);
      if (c >> BigInt(bits) !== 0n) break;
      await nextTurn();
      if (await probablePrime(c, bytes)) return c;
    }
  }
}
