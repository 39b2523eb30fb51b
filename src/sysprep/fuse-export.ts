/**
 * A qemu-storage-daemon that shows a qcow2 or raw image as a plain raw file
 * (a FUSE export), writable unless read-only: no mounts of filesystems, no
 * loop devices. Tools reach each partition by its offset in that file
 * (layout.ts). A qcow2 overlay's backing file is opened read-only by QEMU, so
 * writes land only in the overlay. Writable, the image is never flushed by
 * the daemon: the tools' fsyncs stop at the export, and sysprep flushes the
 * image once, when it commits it (image.ts commitTempCopy). xfs_admin and
 * cryptsetup need a partition as a file of its own: addPartition.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { GlintError } from "../errors.js";
import { requireTool, runTool } from "../host/tools.js";

interface QmpReply {
  id?: number;
  return?: unknown;
  error?: { class: string; desc: string };
}

class Qmp {
  private buf = "";
  private nextId = 1;
  private readonly waiting = new Map<number, (r: QmpReply) => void>();
  /** Resolves true on the greeting, false if the connection closes first. */
  private greeted: Promise<boolean>;
  private closed = false;
  private readonly events = new Set<string>();
  private readonly eventWaiters = new Map<string, () => void>();

  /** Wait for event `name` with data.id `id` (seen before or after this call). */
  async event(name: string, id: string, timeoutMs = 10_000): Promise<void> {
    const key = `${name}:${id}`;
    if (this.events.delete(key)) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new GlintError(`qemu-storage-daemon: no ${name} for ${id}`)),
        timeoutMs,
      );
      this.eventWaiters.set(key, () => {
        clearTimeout(t);
        this.eventWaiters.delete(key);
        this.events.delete(key);
        resolve();
      });
    });
  }

  constructor(private readonly sock: net.Socket) {
    let greet: (ok: boolean) => void = () => {};
    this.greeted = new Promise((resolve) => {
      greet = resolve;
    });
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      this.buf += chunk;
      for (let i = this.buf.indexOf("\n"); i >= 0; i = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (line === "") continue;
        let msg: QmpReply & { QMP?: unknown };
        try {
          msg = JSON.parse(line) as QmpReply & { QMP?: unknown };
        } catch {
          continue; // not QMP: ignore
        }
        const ev = (msg as { event?: string; data?: { id?: string } }).event;
        if (msg.QMP !== undefined) greet(true);
        else if (msg.id !== undefined) this.waiting.get(msg.id)?.(msg);
        else if (ev !== undefined) {
          const key = `${ev}:${(msg as { data?: { id?: string } }).data?.id ?? ""}`;
          this.events.add(key);
          this.eventWaiters.get(key)?.();
        }
      }
    });
    const fail = () => {
      this.closed = true;
      greet(false);
      for (const [id, cb] of this.waiting) {
        cb({ id, error: { class: "Closed", desc: "QMP connection closed" } });
      }
      this.waiting.clear();
    };
    sock.on("close", fail);
    sock.on("error", fail);
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!(await this.greeted) || this.closed) {
      throw new GlintError(`qemu-storage-daemon ${command}: QMP connection closed`);
    }
    const id = this.nextId++;
    const reply = await new Promise<QmpReply>((resolve) => {
      this.waiting.set(id, resolve);
      this.sock.write(
        `${JSON.stringify({ execute: command, id, ...(args ? { arguments: args } : {}) })}\n`,
      );
    });
    this.waiting.delete(id);
    if (reply.error) throw new GlintError(`qemu-storage-daemon ${command}: ${reply.error.desc}`);
    return reply.return;
  }
}

export interface ExportOptions {
  readonly format: "qcow2" | "raw";
  /** Open everything read-only (dry run, inspect). */
  readonly readOnly: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * A qcow2 image to also open read-only, only for QEMU's image locking: the
   * start fails if a running QEMU has it open for writing.
   */
  readonly lockCheck?: string;
  /** The image's name in error messages (default: the path opened). */
  readonly displayName?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `mountpoint` is a mount point (per /proc/self/mountinfo). */
export async function isMounted(mountpoint: string): Promise<boolean> {
  const info = await fs.readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const esc = mountpoint.replace(
    /[ \t\n\\]/g,
    (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`,
  );
  return info.split("\n").some((l) => l.split(" ")[4] === esc);
}

export class ImageExport {
  private readonly mountpoints: string[] = [];
  private stderr = "";

  private constructor(
    private readonly child: ChildProcess,
    private readonly qmp: Qmp,
    private readonly sock: net.Socket,
    private readonly workDir: string,
    private readonly options: ExportOptions,
    readonly diskPath: string,
  ) {
    child.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
  }

  /** Start the daemon on `image`, export the whole disk at `<workDir>/disk`. */
  static async start(image: string, workDir: string, options: ExportOptions): Promise<ImageExport> {
    const bin = await requireTool("qemu-storage-daemon", options.env);
    const sockPath = path.join(workDir, "qmp.sock");
    const diskPath = path.join(workDir, "disk");
    await fs.writeFile(diskPath, "", { flag: "wx" });
    const ro = options.readOnly;
    const file = {
      driver: "file",
      filename: image,
      "node-name": "file0",
      "read-only": ro,
      // No flush reaches the disk (debugfs alone fsyncs 1-3 times a run):
      // the image is flushed once, by commitTempCopy.
      ...(ro ? {} : { cache: { direct: false, "no-flush": true } }),
    };
    const fmt = { driver: options.format, file: "file0", "node-name": "disk", "read-only": ro };
    const exp = {
      type: "fuse",
      id: "disk",
      "node-name": "disk",
      mountpoint: diskPath,
      writable: !ro,
    };
    const args = [
      "--chardev",
      `socket,id=qmp0,path=${sockPath},server=on,wait=off`,
      "--monitor",
      "chardev=qmp0",
      "--blockdev",
      JSON.stringify(file),
      "--blockdev",
      JSON.stringify(fmt),
      "--export",
      JSON.stringify(exp),
      "--pidfile",
      path.join(workDir, "qsd.pid"),
    ];
    if (options.lockCheck !== undefined) {
      const f = {
        driver: "file",
        filename: options.lockCheck,
        "node-name": "lockf",
        "read-only": true,
      };
      const q = { driver: "qcow2", file: "lockf", "node-name": "lockq", "read-only": true };
      args.push("--blockdev", JSON.stringify(f), "--blockdev", JSON.stringify(q));
    }
    const child = spawn(bin, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: options.env ?? process.env,
    });
    let stderr = "";
    let exitCode: number | null | undefined;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("exit", (code) => {
      exitCode = code;
    });
    // "close" comes once stderr is complete: the error line is then known.
    const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
    const failed = () => {
      const line = stderr.split("\n").find((l) => l.trim() !== "") ?? `exit code ${exitCode}`;
      const detail = line.replace(/^qemu-storage-daemon: /, "");
      const inUse = /lock/i.test(detail) ? " (is the image in use, e.g. by a running VM?)" : "";
      const name = options.displayName ?? image;
      return new GlintError(`cannot open ${name}: ${detail}${inUse}`, {
        code: inUse ? "busy" : "tool-failed",
        details: { file: name },
      });
    };
    const sock = await (async () => {
      for (let i = 0; i < 4000; i++) {
        if (exitCode !== undefined || child.exitCode !== null) {
          await closed;
          throw failed();
        }
        const s = await new Promise<net.Socket | undefined>((resolve) => {
          const c = net.connect(sockPath);
          c.once("connect", () => resolve(c));
          c.once("error", () => resolve(undefined));
        });
        if (s) return s;
        await sleep(i < 50 ? 2 : 10);
      }
      child.kill("SIGKILL");
      throw new GlintError(`qemu-storage-daemon did not start for ${image}`);
    })();
    const qmp = new Qmp(sock);
    const ex = new ImageExport(child, qmp, sock, workDir, options, diskPath);
    ex.stderr = stderr;
    ex.mountpoints.push(diskPath);
    try {
      await qmp.execute("qmp_capabilities");
    } catch (error) {
      await ex.stop();
      if (child.exitCode !== null && child.exitCode !== 0) {
        await closed;
        throw failed();
      }
      throw error;
    }
    return ex;
  }

  private readonly live = new Set<string>();

  /**
   * Export bytes [offset, offset+size) of the disk as `<workDir>/part<n>`
   * (`-rw` when writable). A writable FUSE export takes the resize permission
   * on the disk, which other nodes do not share: first releaseDisk(), then
   * one writable partition at a time (removePartition).
   */
  async addPartition(n: number, offset: number, size: number, writable = false): Promise<string> {
    if (writable && this.options.readOnly)
      throw new GlintError("internal: writable partition on a read-only export");
    if (writable) await this.releaseDisk();
    const id = `p${n}${writable ? "w" : ""}`;
    const mp = path.join(this.workDir, `part${n}${writable ? "-rw" : ""}`);
    await fs.writeFile(mp, "", { flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    const ro = !writable;
    await this.qmp.execute("blockdev-add", {
      driver: "raw",
      "node-name": id,
      file: "disk",
      offset,
      size,
      "read-only": ro,
    });
    this.live.add(id);
    if (!this.mountpoints.includes(mp)) this.mountpoints.push(mp);
    await this.qmp.execute("block-export-add", {
      type: "fuse",
      id,
      "node-name": id,
      mountpoint: mp,
      writable,
    });
    return mp;
  }

  /** Remove the export and node of partition `n` (read-only or writable). */
  async removePartition(n: number, writable = false): Promise<void> {
    const id = `p${n}${writable ? "w" : ""}`;
    if (!this.live.delete(id)) return;
    await this.qmp.execute("block-export-del", { id });
    await this.qmp.event("BLOCK_EXPORT_DELETED", id);
    await this.qmp.execute("blockdev-del", { "node-name": id });
  }

  /** Remove every partition export (before writing, see addPartition). */
  async removeAllPartitions(): Promise<void> {
    for (const id of [...this.live]) {
      const m = /^p(\d+)(w?)$/.exec(id);
      if (m) await this.removePartition(Number(m[1]), m[2] === "w");
    }
  }

  private get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private diskReleased = false;

  /** Remove the whole-disk export (its file is gone afterwards). */
  async releaseDisk(): Promise<void> {
    if (this.diskReleased || this.options.readOnly) return;
    this.diskReleased = true;
    await this.qmp.execute("block-export-del", { id: "disk" });
    await this.qmp.event("BLOCK_EXPORT_DELETED", "disk");
  }

  /** Flush, quit the daemon and make sure no FUSE mount is left behind. */
  async stop(): Promise<void> {
    if (!this.exited) {
      await this.qmp.execute("quit").catch(() => undefined);
      for (let i = 0; i < 500 && !this.exited; i++) await sleep(i < 50 ? 2 : 10);
      if (!this.exited) {
        this.child.kill("SIGKILL");
        for (let i = 0; i < 200 && !this.exited; i++) await sleep(10);
      }
    }
    this.sock.destroy();
    for (const mp of this.mountpoints) {
      if (await isMounted(mp)) {
        await runTool(
          "fusermount3",
          ["-u", "-z", mp],
          this.options.env ? { env: this.options.env } : {},
        );
      }
    }
  }

  /** Whether the daemon has quit on its own with status 0 (the image closed cleanly). */
  get cleanExit(): boolean {
    return this.child.exitCode === 0;
  }

  /** stderr of the daemon so far (for error messages). */
  get log(): string {
    return this.stderr;
  }
}
