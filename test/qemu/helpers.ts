/** Shared fixtures for the src/qemu tests. */

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  applyPolicy,
  POLICIES,
  type RandomSource,
  type SystemIdentifiers,
} from "../../src/identity/index.js";
import { splitArgv } from "../../src/qemu/options.js";
import { type VmConfig, type VmConfigInput, vmConfigSchema } from "../../src/vm/config.js";

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

/** A fresh, valid identity drawn with the project's generators from a seed. */
export function identityFromSeed(seed: number | string): SystemIdentifiers {
  return applyPolicy(
    undefined,
    POLICIES.fresh,
    { has: () => false },
    {
      random: seededRandom(seed),
      now: new Date("2026-01-31T12:00:00Z"),
    },
  );
}

export function config(input: VmConfigInput = {}): VmConfig {
  return vmConfigSchema.parse(input);
}

/** mkdtemp under the OS temp dir; `cleanup` removes it. */
export async function tempDir(
  prefix = "glint-qemu-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The arguments of every occurrence of `option` (e.g. "-smbios"), using QEMU's argv rules. */
export function optionArgs(argv: readonly string[], option: string): string[] {
  const name = option.replace(/^--?/, "");
  return splitArgv(argv).flatMap((t) =>
    t.kind === "option" && t.name === name && t.arg !== undefined ? [t.arg] : [],
  );
}

/** A running swtpm (TPM 2.0) listening on `socket`; `stop` kills exactly this process. */
export interface TestSwtpm {
  readonly socket: string;
  stop(): Promise<void>;
}

export async function startTestSwtpm(stateDir: string): Promise<TestSwtpm> {
  await mkdir(stateDir, { recursive: true });
  const socket = path.join(stateDir, "swtpm.sock");
  const child = spawn(
    "swtpm",
    ["socket", "--tpm2", "--tpmstate", `dir=${stateDir}`, "--ctrl", `type=unixio,path=${socket}`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`swtpm exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`swtpm did not create ${socket}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    socket,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A minimal QMP client over a unix socket. */
export interface Qmp {
  execute(command: string, args?: Record<string, unknown>): Promise<unknown>;
  close(): void;
}

export async function connectQmp(socketPath: string, timeoutMs = 10_000): Promise<Qmp> {
  const deadline = Date.now() + timeoutMs;
  let sock: Socket | undefined;
  while (sock === undefined) {
    try {
      sock = await new Promise<Socket>((resolve, reject) => {
        const s = createConnection(socketPath);
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const connected = sock;
  let buffer = "";
  const waiting: Array<(msg: Record<string, unknown>) => void> = [];
  const queue: Record<string, unknown>[] = [];
  connected.setEncoding("utf8");
  connected.on("data", (chunk: string) => {
    buffer += chunk;
    let nl = buffer.indexOf("\n");
    while (nl >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf("\n");
      if (line === "") continue;
      const msg = JSON.parse(line) as Record<string, unknown>;
      if ("event" in msg) continue;
      const w = waiting.shift();
      if (w) w(msg);
      else queue.push(msg);
    }
  });
  const next = (): Promise<Record<string, unknown>> => {
    const m = queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => waiting.push(resolve));
  };
  await next(); // greeting
  const execute = async (command: string, args?: Record<string, unknown>): Promise<unknown> => {
    connected.write(
      `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
    );
    const reply = await next();
    if ("error" in reply) throw new Error(`QMP ${command}: ${JSON.stringify(reply.error)}`);
    return reply.return;
  };
  await execute("qmp_capabilities");
  return { execute, close: () => connected.destroy() };
}
