/**
 * A small QMP client (QEMU Machine Protocol over the VM's `qmp.sock`): the
 * capabilities handshake, then one command at a time, matched by id.
 */
import { randomUUID } from "node:crypto";
import { GlintError } from "../errors.js";
import { JsonSocket } from "./json-socket.js";

export class QmpClient {
  private seq = 0;
  private readonly tag = randomUUID().slice(0, 8);

  private constructor(private readonly conn: JsonSocket) {}

  /** Connect, read the greeting and leave capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const conn = await JsonSocket.connect(path, timeoutMs);
    try {
      await conn.next((m) => "QMP" in m, timeoutMs, "the QMP greeting");
      const client = new QmpClient(conn);
      await client.execute("qmp_capabilities", undefined, timeoutMs);
      return client;
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /** Run `command`; resolves to its `return` value, rejects with its `error`. */
  async execute(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = 5000,
  ): Promise<unknown> {
    const id = `glint-${this.tag}-${++this.seq}`;
    this.conn.send({ execute: command, ...(args ? { arguments: args } : {}), id });
    const reply = await this.conn.next((m) => m.id === id, timeoutMs, command);
    if ("error" in reply) {
      const err = reply.error as { class?: string; desc?: string } | undefined;
      throw new GlintError(`QMP ${command}: ${err?.desc ?? "error"}`, {
        code: "failed",
        details: { reason: err?.class ?? "qmp-error" },
      });
    }
    return reply.return;
  }

  close(): void {
    this.conn.close();
  }
}
