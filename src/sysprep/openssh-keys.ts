/**
 * SSH host keys generated in process with node:crypto and written in
 * OpenSSH's own formats (`openssh-key-v1` private key, one-line public key):
 * ed25519 and ECDSA P-256 through generateKeyPair, RSA-3072 from two
 * 1536-bit primes drawn in parallel on the thread pool (OpenSSL's prime
 * search, top two bits set so n has exactly 3072 bits), e = 65537, checked
 * by a signature made and verified with the new key.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generatePrime,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from "node:crypto";

/** A new key pair's private key as a JWK. */
function genJwk(type: "ed25519" | "p256"): Promise<JsonWebKey> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, priv: KeyObject) =>
      err ? reject(err) : resolve(priv.export({ format: "jwk" }));
    if (type === "ed25519") generateKeyPair("ed25519", {}, done);
    else generateKeyPair("ec", { namedCurve: "P-256" }, done);
  });
}
const genPrime = (bits: number): Promise<bigint> =>
  new Promise((resolve, reject) => {
    generatePrime(bits, { bigint: true }, (err, prime) => (err ? reject(err) : resolve(prime)));
  });

export type InProcessKeyType = "rsa" | "ecdsa" | "ed25519";

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function sshString(data: Buffer | string): Buffer {
  const b = typeof data === "string" ? Buffer.from(data) : data;
  return Buffer.concat([u32(b.length), b]);
}

function bigToBytes(n: bigint): Buffer {
  let h = n.toString(16);
  if (h.length % 2) h = `0${h}`;
  return Buffer.from(h, "hex");
}

/** SSH mpint of a non-negative integer given as big-endian bytes (or a bigint). */
function mpint(v: Buffer | bigint): Buffer {
  let b = typeof v === "bigint" ? bigToBytes(v) : v;
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  b = b.subarray(i);
  if (b.length > 0 && ((b[0] ?? 0) & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b]);
  return sshString(b);
}

const b64u = (s: string | undefined): Buffer => Buffer.from(s ?? "", "base64url");

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [((a % m) + m) % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new RangeError("not invertible");
  return ((oldS % m) + m) % m;
}

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a, b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

const b64uBig = (v: bigint): string => bigToBytes(v).toString("base64url");

/**
 * Sanity check of a new RSA key through OpenSSL (milliseconds; a BigInt
 * modPow on the main thread took 100+ ms): it loads as a private key and a
 * signature made with it (CRT path) verifies with the public half.
 */
function roundTrip(k: {
  n: bigint;
  e: bigint;
  d: bigint;
  p: bigint;
  q: bigint;
  iqmp: bigint;
}): boolean {
  try {
    const jwk: JsonWebKey = {
      kty: "RSA",
      n: b64uBig(k.n),
      e: b64uBig(k.e),
      d: b64uBig(k.d),
      p: b64uBig(k.p),
      q: b64uBig(k.q),
      dp: b64uBig(k.d % (k.p - 1n)),
      dq: b64uBig(k.d % (k.q - 1n)),
      qi: b64uBig(k.iqmp),
    };
    const priv = createPrivateKey({ key: jwk, format: "jwk" });
    const pub = createPublicKey({ key: { kty: "RSA", n: jwk.n, e: jwk.e }, format: "jwk" });
    const msg = randomBytes(32);
    return verify("sha256", msg, pub, sign("sha256", msg, priv));
  } catch {
    return false;
  }
}

interface KeyParts {
  readonly keyType: string;
  readonly publicBlob: Buffer;
  /** The private fields after the key type, in OpenSSH order. */
  readonly privateFields: Buffer;
}

async function rsaParts(): Promise<KeyParts> {
  const e = 65537n;
  for (;;) {
    // Both on the thread pool, in parallel. (A main-thread search with fewer
    // Miller-Rabin rounds used 15% less CPU but delayed every step of the
    // run waiting on the event loop: slower overall.)
    const [p, q] = await Promise.all([genPrime(1536), genPrime(1536)]);
    if (p === q || gcd(e, p - 1n) !== 1n || gcd(e, q - 1n) !== 1n) continue;
    const n = p * q;
    if (n.toString(2).length !== 3072) continue;
    const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
    const d = modInverse(e, lambda);
    const iqmp = modInverse(q, p);
    if (!roundTrip({ n, e, d, p, q, iqmp })) continue;
    return {
      keyType: "ssh-rsa",
      publicBlob: Buffer.concat([sshString("ssh-rsa"), mpint(e), mpint(n)]),
      privateFields: Buffer.concat([mpint(n), mpint(e), mpint(d), mpint(iqmp), mpint(p), mpint(q)]),
    };
  }
}

async function ed25519Parts(): Promise<KeyParts> {
  const jwk = await genJwk("ed25519");
  const pk = b64u(jwk.x);
  const sk = b64u(jwk.d);
  return {
    keyType: "ssh-ed25519",
    publicBlob: Buffer.concat([sshString("ssh-ed25519"), sshString(pk)]),
    privateFields: Buffer.concat([sshString(pk), sshString(Buffer.concat([sk, pk]))]),
  };
}

async function ecdsaParts(): Promise<KeyParts> {
  const jwk = await genJwk("p256");
  const q = Buffer.concat([Buffer.from([4]), b64u(jwk.x), b64u(jwk.y)]);
  const t = "ecdsa-sha2-nistp256";
  return {
    keyType: t,
    publicBlob: Buffer.concat([sshString(t), sshString("nistp256"), sshString(q)]),
    privateFields: Buffer.concat([sshString("nistp256"), sshString(q), mpint(b64u(jwk.d))]),
  };
}

/** Armour an unencrypted openssh-key-v1 private key. */
function privateKeyFile(k: KeyParts, comment: string): Buffer {
  const check = randomBytes(4);
  let priv = Buffer.concat([
    check,
    check,
    sshString(k.keyType),
    k.privateFields,
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(k.publicBlob),
    sshString(priv),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return Buffer.from(
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`,
  );
}

/** A new host key: the private key file and the public key line, as ssh-keygen writes them. */
export async function generateOpenSshKey(
  type: InProcessKeyType,
  comment: string,
): Promise<{ privateKey: Buffer; publicKey: Buffer }> {
  const k =
    type === "rsa"
      ? await rsaParts()
      : type === "ed25519"
        ? await ed25519Parts()
        : await ecdsaParts();
  return {
    privateKey: privateKeyFile(k, comment),
    publicKey: Buffer.from(`${k.keyType} ${k.publicBlob.toString("base64")} ${comment}\n`),
  };
}
