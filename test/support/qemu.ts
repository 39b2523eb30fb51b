/** QEMU-side helpers: VM configs, argv lookups and a minimal QMP client. */
import { createConnection, type Socket } from "node:net";
import { splitArgv } from "../../src/qemu/options.js";
import { type VmConfig, type VmConfigInput, vmConfigSchema } from "../../src/vm/config.js";

/** A VM config with the defaults filled in. */
export function config(input: VmConfigInput = {}): VmConfig {
  return vmConfigSchema.parse(input);
}

/** The arguments of every occurrence of `option` (e.g. "-smbios"), using QEMU's argv rules. */
export function optionArgs(argv: readonly string[], option: string): string[] {
  const name = option.replace(/^--?/, "");
  return splitArgv(argv).flatMap((t) =>
    t.kind === "option" && t.name === name && t.arg !== undefined ? [t.arg] : [],
  );
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
