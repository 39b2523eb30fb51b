/**
 * New SSH host keys: rsa, ecdsa and ed25519 in process (openssh-keys.ts),
 * dsa with ssh-keygen; all started at once, before the image is read (RSA
 * takes the longest).
 */
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { runTool } from "../host/tools.js";
import { generateOpenSshKey } from "./openssh-keys.js";

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

/** Generate one host key of `type` (ssh-keygen for dsa, in process otherwise). */
export async function generateHostKey(
  type: KeyType,
  dir: string,
  comment: string,
  env?: NodeJS.ProcessEnv,
): Promise<HostKey> {
  if (type !== "dsa") {
    const k = await generateOpenSshKey(type, comment);
    return { type, ...k, fingerprint: fingerprint(k.publicKey.toString()) ?? "" };
  }
  const file = path.join(dir, `ssh_host_${type}_key`);
  const bits = ["-b", "1024"];
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
    this.used.add(type);
    return this.jobs.get(type) as Promise<HostKey>;
  }

  /** Wait for the jobs that were asked for (the others are left to finish on their own). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.used].map((t) => this.jobs.get(t)));
  }

  private readonly used = new Set<KeyType>();
}
