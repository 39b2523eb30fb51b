/**
 * A minimal QMP client for a VM's monitor socket: connect, negotiate
 * capabilities, run one command at a time. Events are ignored.
 */
import net from "node:net";
import { GlintError } from "../errors.js";

export class QmpClient {
  private buf = "";
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      this.buf += chunk;
      for (let i = this.buf.indexOf("\n"); i >= 0; i = this.buf.indexOf("\n")) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake?.();
    });
    const end = () => {
      this.closed = true;
      this.wake?.();
    };
    sock.on("close", end);
    sock.on("error", end);
  }

  /** Connect to `socket` and negotiate capabilities; rejects if QEMU is not there. */
  static async connect(socket: string, timeoutMs = 5_000): Promise<QmpClient> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socket);
      const t = setTimeout(() => {
        s.destroy();
        reject(new GlintError(`QMP: no answer on ${socket}`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    const client = new QmpClient(sock);
    await client.next(timeoutMs); // the greeting
    await client.execute("qmp_capabilities", undefined, timeoutMs);
    return client;
  }

  private async next(timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
      }
      if (this.closed) throw new GlintError("QMP: QEMU closed the monitor");
      const left = deadline - Date.now();
      if (left <= 0) throw new GlintError("QMP: QEMU did not answer");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Run `command`; resolves to its `return` value. */
  async execute(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = 5_000,
  ): Promise<unknown> {
    this.sock.write(
      `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
    );
    for (;;) {
      const msg = await this.next(timeoutMs);
      if ("event" in msg) continue;
      if ("error" in msg) {
        const e = msg.error as { desc?: string };
        throw new GlintError(`QMP ${command}: ${e.desc ?? "failed"}`);
      }
      if ("return" in msg) return msg.return;
    }
  }

  close(): void {
    this.sock.destroy();
  }
}
