/**
 * The swtpm sidecar that QEMU's `-tpmdev emulator` connects to, started on
 * the VM's TPM state for the life of one `glint run`. Unix socket paths
 * longer than 107 bytes (or with a comma) are replaced by a socket in a short
 * temp directory (see swtpm.ts for the path quirks).
 */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { requireTool } from "../host/tools.js";
import { isFile } from "../vm/fsutil.js";
import { TPM2_PERMALL } from "../vm/layout.js";
import { ownedTempDir, PLAIN_PATH_RE, shortTmpRoot, tail } from "./swtpm-util.js";

/** Max `sun_path` length on Linux, without the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

// ---------------------------------------------------------------------------
// The sidecar
// ---------------------------------------------------------------------------

export interface SwtpmProcess {
  /** The control socket to give QEMU (`-chardev socket,path=…`); may differ from the one asked for. */
  readonly socket: string;
  readonly pid: number;
  /** Stop swtpm (SIGTERM, then SIGKILL after 3 s) and remove the socket and temp files. Idempotent. */
  stop(): Promise<void>;
}

export interface StartSwtpmOptions {
  env?: NodeJS.ProcessEnv;
  /** Give up if the socket has not appeared after this long. Default 10 s. */
  timeoutMs?: number;
}

/**
 * Start `swtpm socket --tpm2 --tpmstate dir=<dir> --ctrl
 * type=unixio,path=<socket> --terminate` in the foreground (a child of this
 * process) and wait until its control socket exists. With `--terminate`,
 * swtpm exits by itself when QEMU disconnects.
 *
 * If `socketPath` is longer than a Unix socket path may be (107 bytes) or
 * contains a comma, the socket is created as `<tmp>/glint-tpm-XXXXXX/swtpm.sock`
 * instead (returned in `socket`, removed by `stop()`).
 */
export async function startSwtpm(
  dir: string,
  socketPath: string,
  options: StartSwtpmOptions = {},
): Promise<SwtpmProcess> {
  const env = options.env ?? process.env;
  const stateDir = path.resolve(dir);
  if (!(await isFile(path.join(stateDir, TPM2_PERMALL)))) {
    throw new GlintError(`no TPM state in ${stateDir}: ${TPM2_PERMALL} is missing`);
  }
  const swtpm = await requireTool("swtpm", env);

  let socket = path.resolve(socketPath);
  const socketNeedsTemp = Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES || socket.includes(",");
  const stateNeedsLink = !PLAIN_PATH_RE.test(stateDir);
  let tempDir: string | null = null;
  if (socketNeedsTemp || stateNeedsLink) {
    tempDir = await ownedTempDir(shortTmpRoot(env), "glint-tpm-");
  }
  const cleanupTemp = async () => {
    if (tempDir !== null) await fs.rm(tempDir, { recursive: true, force: true });
  };

  let child: ReturnType<typeof spawn>;
  try {
    if (socketNeedsTemp && tempDir !== null) {
      socket = path.join(tempDir, "swtpm.sock");
    } else {
      await fs.mkdir(path.dirname(socket), { recursive: true });
      await removeStaleSocket(socket);
    }
    let stateArg = stateDir;
    if (stateNeedsLink && tempDir !== null) {
      stateArg = path.join(tempDir, "state");
      await fs.symlink(stateDir, stateArg);
    }
    child = spawn(
      swtpm,
      [
        "socket",
        "--tpm2",
        "--tpmstate",
        `dir=${stateArg}`,
        "--ctrl",
        `type=unixio,path=${socket}`,
        "--terminate",
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
  } catch (error) {
    await cleanupTemp();
    throw error;
  }

  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const status: {
    exit: { code: number | null; signal: NodeJS.Signals | null } | null;
    error: Error | null;
  } = { exit: null, error: null };
  const exited = new Promise<void>((resolve) => {
    child.once("error", (error) => {
      status.error = error;
      resolve();
    });
    child.once("exit", (code, signal) => {
      status.exit = { code, signal };
      resolve();
    });
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (status.exit === null && status.error === null) {
        child.kill("SIGTERM");
        const ended = await Promise.race([exited.then(() => true), delay(3000).then(() => false)]);
        if (!ended) {
          child.kill("SIGKILL");
          await exited;
        }
      }
      await removeStaleSocket(socket).catch(() => undefined);
      await cleanupTemp();
    })();
    return stopping;
  };

  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    if (status.error !== null || status.exit !== null) {
      const how = status.error !== null ? status.error.message : describeExit(status.exit);
      await stop();
      throw new GlintError(`swtpm ${how} before creating ${socket}${tail(output)}`);
    }
    if (await isSocket(socket)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new GlintError(`swtpm did not create ${socket} in time${tail(output)}`);
    }
    await Promise.race([exited, delay(20)]);
  }

  const pid = child.pid;
  if (pid === undefined) {
    await stop();
    throw new GlintError("swtpm started without a process id");
  }
  return { socket, pid, stop };
}

function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null } | null): string {
  if (exit === null) return "failed";
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
}

async function removeStaleSocket(socket: string): Promise<void> {
  let st: Awaited<ReturnType<typeof fs.lstat>>;
  try {
    st = await fs.lstat(socket);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new GlintError(`${socket} exists and is not a socket: refusing to replace it`);
  }
  await fs.rm(socket, { force: true });
}

async function isSocket(file: string): Promise<boolean> {
  try {
    return (await fs.lstat(file)).isSocket();
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
