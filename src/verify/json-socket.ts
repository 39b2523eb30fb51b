/**
 * A JSON-lines connection to a UNIX socket (QMP and the QEMU guest agent
 * speak JSON objects separated by newlines): connect with a deadline, send
 * one object, wait for the next object that a predicate accepts.
 */
import net from "node:net";
import { GlintError } from "../errors.js";

type Json = Record<string, unknown>;

interface Waiter {
  accept: (msg: Json) => boolean;
  resolve: (msg: Json) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class JsonSocket {
  private buffer = "";
  private readonly queue: Json[] = [];
  private readonly waiters: Waiter[] = [];
  private closedWith: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly path: string,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    const fail = (e: Error) => {
      this.closedWith ??= e;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(this.closedWith);
      }
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new GlintError(`${path}: connection closed`, { code: "io" })));
  }

  /**
   * Connect to the socket at `path` within `timeoutMs`. A listener that
   * serves one client at a time (qemu-ga, a QEMU chardev) refuses while it
   * re-arms after the previous client: ECONNREFUSED is retried until the
   * deadline.
   */
  static async connect(path: string, timeoutMs: number): Promise<JsonSocket> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return new JsonSocket(await JsonSocket.connectOnce(path, deadline - Date.now()), path);
      } catch (e) {
        const code = (e as GlintError).cause as NodeJS.ErrnoException | undefined;
        if (code?.code !== "ECONNREFUSED" || Date.now() + 50 >= deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private static connectOnce(path: string, timeoutMs: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      const timer = setTimeout(
        () => {
          socket.destroy();
          reject(new GlintError(`${path}: no connection within ${timeoutMs} ms`, { code: "io" }));
        },
        Math.max(timeoutMs, 1),
      );
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(socket);
      });
      socket.once("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new GlintError(`${path}: ${e.code ?? e.message}`, { code: "io", cause: e }));
      });
    });
  }

  private onData(chunk: string): void {
    // The guest agent may send a 0xFF sentinel before a resynchronised reply.
    this.buffer += chunk.replace(/\uFFFD|\xFF/g, "");
    for (;;) {
      const nl = this.buffer.indexOf("\n");
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line === "") continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        continue; // not ours to interpret
      }
      if (msg === null || typeof msg !== "object" || Array.isArray(msg)) continue;
      this.deliver(msg as Json);
    }
  }

  private deliver(msg: Json): void {
    const i = this.waiters.findIndex((w) => w.accept(msg));
    if (i < 0) {
      this.queue.push(msg);
      return;
    }
    const [w] = this.waiters.splice(i, 1);
    if (!w) return;
    clearTimeout(w.timer);
    w.resolve(msg);
  }

  send(msg: Json): void {
    if (this.closedWith) throw this.closedWith;
    this.socket.write(`${JSON.stringify(msg)}\n`);
  }

  /** The next message (already received or still to come) that `accept` takes. */
  next(accept: (msg: Json) => boolean, timeoutMs: number, what: string): Promise<Json> {
    const i = this.queue.findIndex(accept);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0] as Json);
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(
          new GlintError(`${this.path}: no answer to ${what} within ${timeoutMs} ms`, {
            code: "io",
          }),
        );
      }, timeoutMs);
      const waiter: Waiter = { accept, resolve, reject, timer };
      this.waiters.push(waiter);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
