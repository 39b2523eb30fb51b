/**
 * A real PostgreSQL server for the registry tests: a fresh cluster in a temp
 * directory (Debian's `postgresql` package, installed by
 * scripts/host-packages.sh), listening only on a unix socket in that
 * directory. PostgreSQL refuses to run as root, so as root (CI) it runs as
 * `nobody` through runuser.
 */
import { execFile } from "node:child_process";
import { existsSync, promises as fs, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

function binDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) {
    throw new Error(
      "PostgreSQL is not installed: run scripts/host-packages.sh (package postgresql)",
    );
  }
  return path.join(root, versions[0], "bin");
}

export interface PgServer {
  /** A connection URL over the unix socket. */
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop it and delete the cluster. */
  destroy(): Promise<void>;
}

export async function startPostgres(): Promise<PgServer> {
  const bin = binDir();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "glint-pg-"));
  const data = path.join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await fs.chown(dir, 65534, 65534);
  const as = async (tool: string, args: string[]) => {
    const argv = asRoot ? ["-u", "nobody", "--", path.join(bin, tool), ...args] : args;
    await run(asRoot ? "runuser" : path.join(bin, tool), argv, { cwd: dir });
  };
  await as("initdb", ["-D", data, "-U", "glint", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  const options = `-k ${dir} -c listen_addresses= -c fsync=off -c max_connections=100 -p 5432`;
  const start = () =>
    as("pg_ctl", ["-D", data, "-o", options, "-l", path.join(dir, "log"), "-w", "start"]);
  const stop = () => as("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
  await start();
  let running = true;
  return {
    url: `postgres://glint@localhost/postgres?host=${encodeURIComponent(dir)}`,
    async stop() {
      await stop();
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async destroy() {
      if (running) await stop().catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
