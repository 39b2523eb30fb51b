/**
 * New SSH host keys: ssh-keygen, one process per type, run in parallel
 * (RSA takes the longest, so generation starts before the image is read).
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { runTool } from "../qemu/tools.js";

export const KEY_TYPES = ["rsa", "ecdsa", "ed25519", "dsa"] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export interface HostKey {
  readonly type: KeyType;
  readonly privateKey: Buffer;
  readonly publicKey: Buffer;
  readonly fingerprint: string;
}

/** `SHA256:…` fingerprint of an OpenSSH public key line, as `ssh-keygen -l` prints it. */
export function fingerprint(pubLine: string): string | undefined {
  const blob = pubLine.trim().split(/\s+/)[1];
  if (blob === undefined || !/^[A-Za-z0-9+/]+=*$/.test(blob)) return undefined;
  const digest = createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** The key type of a host key file name (`ssh_host_ed25519_key` → ed25519). */
export function hostKeyType(name: string): KeyType | undefined {
  const m = /^ssh_host_(rsa|ecdsa|ed25519|dsa)_key$/.exec(name);
  return m ? (m[1] as KeyType) : undefined;
}

/** Generate one host key of `type` into `dir`. */
export async function generateHostKey(
  type: KeyType,
  dir: string,
  comment: string,
  env?: NodeJS.ProcessEnv,
): Promise<HostKey> {
  const file = path.join(dir, `ssh_host_${type}_key`);
  const bits = type === "rsa" ? ["-b", "3072"] : type === "dsa" ? ["-b", "1024"] : [];
  await runTool(
    "ssh-keygen",
    ["-q", "-t", type, ...bits, "-N", "", "-C", comment, "-f", file],
    env === undefined ? {} : { env },
  );
  const [privateKey, publicKey] = await Promise.all([
    fs.readFile(file),
    fs.readFile(`${file}.pub`),
  ]);
  return { type, privateKey, publicKey, fingerprint: fingerprint(publicKey.toString()) ?? "" };
}

/**
 * Starts generating keys of the given types at once; `get(type)` waits for
 * one (generating it then if it was not started). Failures surface on `get`.
 */
export class KeyFactory {
  private readonly jobs = new Map<KeyType, Promise<HostKey>>();

  constructor(
    private readonly dir: string,
    private readonly comment: string,
    private readonly env?: NodeJS.ProcessEnv,
  ) {}

  start(types: readonly KeyType[]): void {
    for (const t of types) {
      if (this.jobs.has(t)) continue;
      const job = fs
        .mkdir(path.join(this.dir, t), { recursive: true })
        .then(() => generateHostKey(t, path.join(this.dir, t), this.comment, this.env));
      job.catch(() => undefined); // observed by get()
      this.jobs.set(t, job);
    }
  }

  get(type: KeyType): Promise<HostKey> {
    this.start([type]);
    return this.jobs.get(type) as Promise<HostKey>;
  }

  /** Wait for every started job (so none outlives the work directory). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.jobs.values());
  }
}
