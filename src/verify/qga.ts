/**
 * A small client of the QEMU guest agent (qemu-guest-agent inside the guest,
 * reached through the virtio-serial channel that `glint run` adds, at the
 * VM's `qga.sock`). The agent has no greeting and no ids: every session
 * starts with `guest-sync` on a random number, so that a reply left over from
 * an earlier client is never taken for ours, and then runs one command at a
 * time.
 */
import { randomInt } from "node:crypto";
import { GlintError } from "../errors.js";
import { JsonSocket } from "./json-socket.js";

export class QgaClient {
  private constructor(
    private readonly conn: JsonSocket,
    private readonly timeoutMs: number,
  ) {}

  /** Connect and synchronise; fails when no agent answers within `timeoutMs`. */
  static async connect(path: string, timeoutMs = 5000): Promise<QgaClient> {
    const conn = await JsonSocket.connect(path, timeoutMs);
    try {
      const id = randomInt(1, 2 ** 31);
      conn.send({ execute: "guest-sync", arguments: { id } });
      await conn.next((m) => m.return === id, timeoutMs, "guest-sync");
      return new QgaClient(conn, timeoutMs);
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    this.conn.send({ execute: command, ...(args ? { arguments: args } : {}) });
    const reply = await this.conn.next(
      (m) => "return" in m || "error" in m,
      this.timeoutMs,
      command,
    );
    if ("error" in reply) {
      const err = reply.error as { class?: string; desc?: string } | undefined;
      throw new GlintError(`guest agent ${command}: ${err?.desc ?? "error"}`, {
        code: "failed",
        details: { reason: err?.class ?? "qga-error" },
      });
    }
    return reply.return;
  }

  /** A whole (small) file of the guest, through guest-file-open/read/close. */
  async readFile(path: string, limit = 1 << 20): Promise<Buffer> {
    const handle = await this.execute("guest-file-open", { path, mode: "r" });
    const parts: Buffer[] = [];
    let total = 0;
    try {
      for (;;) {
        const r = (await this.execute("guest-file-read", { handle, count: 65536 })) as {
          count?: number;
          "buf-b64"?: string;
          eof?: boolean;
        };
        const chunk = Buffer.from(r["buf-b64"] ?? "", "base64");
        parts.push(chunk);
        total += chunk.length;
        if (r.eof || chunk.length === 0) break;
        if (total > limit) throw new GlintError(`guest file ${path} is larger than ${limit} bytes`);
      }
    } finally {
      await this.execute("guest-file-close", { handle }).catch(() => undefined);
    }
    return Buffer.concat(parts);
  }

  close(): void {
    this.conn.close();
  }
}
