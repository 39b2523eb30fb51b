/**
 * The tiny guest's initramfs: a gzip'd newc archive holding a static
 * busybox, the kernel modules of the {@link planModules} plan and
 * `init.sh` as /init (plus any extra files a test needs in the guest).
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { DEFAULT_CACHE_DIR, fileHash, inputsHash, writeCached } from "./cache.js";
import {
  findKernel,
  GUEST_MODULES,
  type KernelInfo,
  planModules,
  readModule,
  type WantedModule,
} from "./kernel.js";

const execFileAsync = promisify(execFile);

/** Path of the guest's /init script in this directory. */
export const INIT_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "init.sh");

// --- newc cpio writer -------------------------------------------------------

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
}

const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/** Serialize entries as an SVR4 "newc" (070701) archive, mtime 0, uid/gid 0. */
export function writeNewcCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (buf: Buffer): void => {
    parts.push(buf);
    offset += buf.length;
  };
  const all: CpioEntry[] = [...entries, { name: "TRAILER!!!", mode: 0 }];
  all.forEach((entry, index) => {
    const data = entry.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${entry.name}\0`, "utf8");
    const isDir = (entry.mode & 0o170000) === S_IFDIR;
    const fields = [
      entry.name === "TRAILER!!!" ? 0 : index + 1, // ino
      entry.mode,
      0, // uid
      0, // gid
      isDir ? 2 : 1, // nlink
      0, // mtime
      data.length,
      0, // devmajor
      0, // devminor
      entry.rdevMajor ?? 0,
      entry.rdevMinor ?? 0,
      name.length,
      0, // check
    ];
    push(Buffer.from(`070701${fields.map(hex8).join("")}`, "ascii"));
    push(name);
    push(pad4(offset));
    push(data);
    push(pad4(offset));
  });
  return Buffer.concat(parts);
}

// --- Initramfs -------------------------------------------------------------

export interface BuildInitramfsOptions {
  /** Directory for cached images; created if missing. Default: os.tmpdir()/glint-e2e-cache. */
  cacheDir?: string;
  /** Kernel whose modules to include; default {@link findKernel}(). */
  kernel?: KernelInfo;
  /** Static busybox binary; default /bin/busybox. */
  busybox?: string;
  /** Init script copied to /init; default {@link INIT_SCRIPT}. */
  initScript?: string;
  /** Feature list; default {@link GUEST_MODULES}. */
  modules?: readonly WantedModule[];
  /** Extra files to add, keyed by absolute guest path (parents are created). */
  extraFiles?: Readonly<Record<string, string | Buffer>>;
  /** Rebuild even if a cached image exists. */
  force?: boolean;
  modulesRoot?: string;
}

async function listBusyboxApplets(busybox: string): Promise<string[]> {
  const { stdout } = await execFileAsync(busybox, ["--list"], { encoding: "utf8" });
  return stdout
    .split("\n")
    .map((s) => s.trim())
    .filter((s) => /^[A-Za-z0-9_.[-]+$/.test(s) && s !== "busybox" && s !== "linuxrc");
}

function assertStaticBusybox(busybox: string): void {
  if (!existsSync(busybox)) {
    throw new Error(`${busybox} not found; apt-get install busybox-static`);
  }
  const head = readFileSync(busybox).subarray(0, 4096);
  // A dynamically linked ELF carries a PT_INTERP path naming the loader.
  if (head.includes(Buffer.from("/lib64/ld-linux")) || head.includes(Buffer.from("/lib/ld-"))) {
    throw new Error(`${busybox} is dynamically linked; apt-get install busybox-static`);
  }
}

/**
 * Build (or reuse from the cache) a gzip'd newc initramfs for the tiny guest
 * and return its path. The cache key is a hash of every input: the kernel
 * version and module plan, the content of each module, busybox, the init
 * script and the extra files, so any edit causes a rebuild.
 */
export async function buildInitramfs(opts: BuildInitramfsOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const modulesRoot = opts.modulesRoot ?? "/lib/modules";
  const kernel = opts.kernel ?? findKernel("/boot", modulesRoot);
  const busybox = opts.busybox ?? "/bin/busybox";
  const initScript = opts.initScript ?? INIT_SCRIPT;
  assertStaticBusybox(busybox);

  const plan = planModules(kernel.version, opts.modules ?? GUEST_MODULES, modulesRoot);
  const init = await readFile(initScript);
  const extraFiles = Object.entries(opts.extraFiles ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const moduleSrc = (rel: string): string => join(modulesRoot, kernel.version, rel);
  const digest = inputsHash([
    JSON.stringify({ version: kernel.version, plan }),
    await fileHash(busybox),
    ...(await Promise.all(plan.load.map((rel) => fileHash(moduleSrc(rel))))),
    init,
    ...extraFiles.flat(),
  ]);
  const out = join(cacheDir, `initramfs-${kernel.version}-${digest}.cpio.gz`);
  if (!opts.force && existsSync(out)) return out;

  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (path: string): void => {
    if (path === "." || path === "/" || dirs.has(path)) return;
    addDir(posix.dirname(path));
    dirs.add(path);
    entries.push({ name: path, mode: S_IFDIR | 0o755 });
  };
  const addFile = (path: string, data: Buffer, perm = 0o644): void => {
    addDir(posix.dirname(path));
    entries.push({ name: path, mode: S_IFREG | perm, data });
  };

  for (const d of ["bin", "sbin", "dev", "proc", "sys", "tmp", "run", "root", "mnt", "etc/glint"]) {
    addDir(d);
  }
  entries.push({ name: "dev/console", mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ name: "dev/null", mode: S_IFCHR | 0o666, rdevMajor: 1, rdevMinor: 3 });
  addFile("bin/busybox", await readFile(busybox), 0o755);
  for (const applet of await listBusyboxApplets(busybox)) {
    entries.push({ name: `bin/${applet}`, mode: S_IFLNK | 0o777, data: Buffer.from("busybox") });
  }
  addFile("init", init, 0o755);

  const loadList: string[] = [];
  for (const rel of plan.load) {
    const src = moduleSrc(rel);
    const dest = posix.join(kernel.version, rel.replace(/\.ko\.(xz|zst|gz)$/, ".ko"));
    addFile(posix.join("lib/modules", dest), await readModule(src));
    loadList.push(dest);
  }
  addFile("etc/glint/modules", Buffer.from(`${loadList.join("\n")}\n`));
  addFile(
    "etc/glint/modules.json",
    Buffer.from(`${JSON.stringify({ kernel: kernel.version, ...plan }, null, 2)}\n`),
  );
  for (const [path, content] of extraFiles) {
    const rel = path.replace(/^\/+/, "");
    addFile(rel, Buffer.isBuffer(content) ? content : Buffer.from(content), 0o755);
  }

  await writeCached(out, gzipSync(writeNewcCpio(entries), { level: 6 }));
  return out;
}
