/**
 * Tiny Linux test guest for QEMU end-to-end tests.
 *
 * Builds (and caches) a gzip'd newc initramfs holding a static busybox, the
 * host kernel's modules for virtio / 9p / iso9660 / vfat / ext4 / efivarfs /
 * fw_cfg, and `init.sh` as /init. The guest prints `GLINT:key=value` marker
 * lines on ttyS0 and powers off; {@link runAndCollect} / {@link bootGuest}
 * run QEMU (or any wrapper such as the glint CLI) and parse those markers.
 *
 * Everything runs through execFile/spawn with argv arrays; no shell strings.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";

const execFileAsync = promisify(execFile);

/** Bump when the initramfs layout changes so old cache entries are ignored. */
const FORMAT_VERSION = 1;

/** Path of the guest's /init script in this directory. */
export const INIT_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "init.sh");

/** Default cache directory for built initramfs images. */
export const DEFAULT_CACHE_DIR = join(tmpdir(), "glint-e2e-cache");

/** Fixed vendor GUID of the EFI variable written by `glint.efitest=write`. */
export const EFI_TEST_VAR_GUID = "3f1c1b9e-5a4d-4c2b-9e8f-6a7b8c9d0e1f";
export const EFI_TEST_VAR_NAME = `GlintTest-${EFI_TEST_VAR_GUID}`;

// ---------------------------------------------------------------------------
// Kernel discovery
// ---------------------------------------------------------------------------

export interface KernelInfo {
  /** Absolute path of the bzImage, e.g. /boot/vmlinuz-6.1.0-57-amd64. */
  kernel: string;
  /** `uname -r` of that kernel, e.g. 6.1.0-57-amd64. */
  version: string;
}

const INSTALL_HINT =
  "install a Debian kernel with modules: `apt-get install linux-image-amd64` " +
  "(needs /boot/vmlinuz-<ver> and /lib/modules/<ver>/modules.dep)";

/** Compare kernel version strings numerically segment by segment. */
function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/**
 * Pick the newest /boot/vmlinuz-<ver> that has a matching /lib/modules/<ver>.
 * Throws with an install hint if there is none.
 */
export function findKernel(bootDir = "/boot", modulesRoot = "/lib/modules"): KernelInfo {
  let names: string[];
  try {
    names = readdirSync(bootDir);
  } catch (err) {
    throw new Error(`cannot list ${bootDir} (${String(err)}); ${INSTALL_HINT}`);
  }
  const candidates = names
    .filter((n) => n.startsWith("vmlinuz-"))
    .map((n) => n.slice("vmlinuz-".length))
    .filter((v) => existsSync(join(modulesRoot, v, "modules.dep")))
    .sort(compareVersions);
  const version = candidates.at(-1);
  if (version === undefined) {
    throw new Error(`no usable guest kernel in ${bootDir}; ${INSTALL_HINT}`);
  }
  return { kernel: join(bootDir, `vmlinuz-${version}`), version };
}

const COMPRESSORS: readonly { magic: Buffer; ext: string; argv: readonly string[] }[] = [
  // The kernel appends the uncompressed size after the stream: ignore trailing data.
  {
    magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
    ext: "xz",
    argv: ["xz", "-d", "--single-stream", "-f"],
  },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), ext: "zst", argv: ["zstd", "-d", "-q", "-f"] },
];

/**
 * Extract the uncompressed ELF `vmlinux` from a bzImage (cached in `cacheDir`).
 *
 * QEMU boots such an ELF through its PVH entry point (needs CONFIG_PVH=y, as in
 * Debian kernels) when no UEFI firmware is given, skipping the in-guest XZ
 * decompression that costs ~3.5 s under TCG. UEFI (OVMF) boots need the bzImage.
 *
 * Caveat (QEMU 7.2 + SeaBIOS): with a TPM device attached, QEMU puts a PVH
 * initrd on top of the memory SeaBIOS reserves for ACPI tables + TPM log, so
 * the guest loses ACPI (no TPM, poweroff halts: GLINT:acpi=no). Use the
 * bzImage whenever a TPM is attached.
 */
export async function extractVmlinux(
  kernel: KernelInfo = findKernel(),
  cacheDir = DEFAULT_CACHE_DIR,
): Promise<string> {
  const image = await readFile(kernel.kernel);
  const st = statSync(kernel.kernel);
  const tag = createHash("sha256")
    .update(`${kernel.kernel}\0${st.size}\0${st.mtimeMs}`)
    .digest("hex")
    .slice(0, 16);
  const out = join(cacheDir, `vmlinux-${kernel.version}-${tag}`);
  if (existsSync(out)) return out;

  if (image.toString("latin1", 0x202, 0x206) !== "HdrS") {
    throw new Error(`${kernel.kernel} is not a bzImage (no HdrS header)`);
  }
  const setupSects = image.readUInt8(0x1f1) || 4;
  const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
  const payload = image.subarray(start, start + image.readUInt32LE(0x24c));
  const codec = COMPRESSORS.find((c) => payload.subarray(0, c.magic.length).equals(c.magic));
  if (codec === undefined) {
    const magic = payload.subarray(0, 6).toString("hex");
    throw new Error(`${kernel.kernel}: unsupported kernel compression (magic ${magic})`);
  }
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(`${tmp}.${codec.ext}`, payload);
  const [tool, ...toolArgs] = codec.argv;
  try {
    await execFileAsync(tool ?? "", [...toolArgs, `${tmp}.${codec.ext}`]);
    const head = Buffer.alloc(4);
    const fh = await open(tmp, "r");
    try {
      await fh.read(head, 0, 4, 0);
    } finally {
      await fh.close();
    }
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
      throw new Error(`${kernel.kernel}: decompressed payload is not an ELF file`);
    }
    await rename(tmp, out);
  } finally {
    await rm(`${tmp}.${codec.ext}`, { force: true });
    await rm(tmp, { force: true });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Module selection
// ---------------------------------------------------------------------------

/** A kernel feature the guest wants, as module name + Kconfig symbol. */
export interface WantedModule {
  module: string;
  config: string;
}

/** Features the tiny guest needs; each is either built in, a module, or absent. */
export const GUEST_MODULES: readonly WantedModule[] = [
  { module: "virtio_pci", config: "VIRTIO_PCI" },
  { module: "virtio_net", config: "VIRTIO_NET" },
  { module: "virtio_blk", config: "VIRTIO_BLK" },
  { module: "virtio_scsi", config: "SCSI_VIRTIO" },
  { module: "9pnet_virtio", config: "NET_9P_VIRTIO" },
  { module: "9p", config: "9P_FS" },
  { module: "isofs", config: "ISO9660_FS" },
  { module: "vfat", config: "VFAT_FS" },
  { module: "nls_cp437", config: "NLS_CODEPAGE_437" },
  { module: "nls_iso8859-1", config: "NLS_ISO8859_1" },
  { module: "nls_ascii", config: "NLS_ASCII" },
  { module: "nls_utf8", config: "NLS_UTF8" },
  { module: "crc32c_generic", config: "CRYPTO_CRC32C" },
  { module: "ext4", config: "EXT4_FS" },
  { module: "efivarfs", config: "EFIVAR_FS" },
  { module: "tpm_tis", config: "TCG_TIS" },
  { module: "tpm_crb", config: "TCG_CRB" },
  { module: "vmgenid", config: "VMGENID" },
  { module: "dmi-sysfs", config: "DMI_SYSFS" },
  { module: "qemu_fw_cfg", config: "FW_CFG_SYSFS" },
  { module: "ahci", config: "SATA_AHCI" },
  { module: "sr_mod", config: "BLK_DEV_SR" },
  { module: "sd_mod", config: "BLK_DEV_SD" },
];

export interface ModulePlan {
  /** Module paths relative to /lib/modules/<ver>, dependencies first. */
  load: string[];
  /** Wanted features compiled into the kernel. */
  builtin: string[];
  /** Wanted features neither built in nor available as a module. */
  missing: string[];
}

const normalizeModuleName = (name: string): string => name.replaceAll("-", "_");

function moduleNameOf(path: string): string {
  const base = posix.basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, "");
  return normalizeModuleName(base);
}

function readKernelConfig(version: string, bootDir: string): Map<string, string> {
  const config = new Map<string, string>();
  const file = join(bootDir, `config-${version}`);
  if (!existsSync(file)) return config;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) config.set(match[1], match[2]);
  }
  return config;
}

/**
 * Work out which of `wanted` must be loaded as modules (with dependencies from
 * modules.dep, in load order) and which are built in (modules.builtin or
 * CONFIG_X=y in /boot/config-<ver>).
 */
export function planModules(
  version: string,
  wanted: readonly WantedModule[] = GUEST_MODULES,
  modulesRoot = "/lib/modules",
  bootDir = "/boot",
): ModulePlan {
  const dir = join(modulesRoot, version);
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of readFileSync(join(dir, "modules.dep"), "utf8").split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const list = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter((p) => p.length > 0);
    deps.set(moduleNameOf(path), { path, deps: list });
  }
  const builtinFile = join(dir, "modules.builtin");
  const builtinNames = new Set(
    existsSync(builtinFile)
      ? readFileSync(builtinFile, "utf8")
          .split("\n")
          .filter((l) => l.length > 0)
          .map(moduleNameOf)
      : [],
  );
  const config = readKernelConfig(version, bootDir);

  const load: string[] = [];
  const seen = new Set<string>();
  const visit = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    const entry = deps.get(moduleNameOf(path));
    // modules.dep lists the full transitive closure; recurse anyway for order.
    for (const dep of entry?.deps ?? []) visit(dep);
    load.push(path);
  };

  const plan: ModulePlan = { load, builtin: [], missing: [] };
  for (const { module, config: symbol } of wanted) {
    const name = normalizeModuleName(module);
    const entry = deps.get(name);
    if (entry !== undefined) {
      visit(entry.path);
    } else if (builtinNames.has(name) || config.get(symbol) === "y") {
      plan.builtin.push(module);
    } else {
      plan.missing.push(module);
    }
  }
  return plan;
}

async function readModule(file: string): Promise<Buffer> {
  const maxBuffer = 256 * 1024 * 1024;
  if (file.endsWith(".ko.xz")) {
    const { stdout } = await execFileAsync("xz", ["-dc", file], { encoding: "buffer", maxBuffer });
    return stdout;
  }
  if (file.endsWith(".ko.zst")) {
    const { stdout } = await execFileAsync("zstd", ["-dc", file], {
      encoding: "buffer",
      maxBuffer,
    });
    return stdout;
  }
  if (file.endsWith(".ko.gz")) return gunzipSync(await readFile(file));
  return readFile(file);
}

// ---------------------------------------------------------------------------
// newc cpio writer
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Initramfs
// ---------------------------------------------------------------------------

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
 * and return its path. The cache key covers the kernel version, busybox,
 * init script, module plan and extra files, so edits cause a rebuild.
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
  const bbStat = statSync(busybox);
  const kStat = statSync(kernel.kernel);
  const extraFiles = Object.entries(opts.extraFiles ?? {}).sort(([a], [b]) => a.localeCompare(b));

  const key = createHash("sha256");
  key.update(
    JSON.stringify({
      FORMAT_VERSION,
      kernel,
      plan,
      bb: [bbStat.size, bbStat.mtimeMs],
      k: [kStat.size, kStat.mtimeMs],
    }),
  );
  key.update(init);
  for (const [path, content] of extraFiles) key.update(path).update("\0").update(content);
  const digest = key.digest("hex").slice(0, 16);
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
    const src = join(modulesRoot, kernel.version, rel);
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

  const image = gzipSync(writeNewcCpio(entries), { level: 6 });
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, image);
  await rename(tmp, out);
  return out;
}

// ---------------------------------------------------------------------------
// Running QEMU and collecting markers
// ---------------------------------------------------------------------------

/**
 * QEMU arguments for direct kernel boot of the tiny guest with the serial
 * console on stdio. Memory, machine, accelerator etc. are left to the caller.
 */
export function guestKernelArgs(kernel: string, initrd: string, extraAppend = ""): string[] {
  const append = ["console=ttyS0", "panic=-1", "quiet", extraAppend.trim()]
    .filter((s) => s.length > 0)
    .join(" ");
  return ["-kernel", kernel, "-initrd", initrd, "-append", append, "-nographic", "-no-reboot"];
}

export type Markers = Record<string, string[]>;

/**
 * Parse `GLINT:key=value` / `GLINT:key` lines (anywhere in a line, so console
 * escape sequences in front do not matter). Values keep `=` after the first.
 */
export function parseMarkers(output: string): Markers {
  const markers: Markers = {};
  for (const raw of output.split("\n")) {
    const line = raw.replace(/\r/g, "");
    const at = line.indexOf("GLINT:");
    if (at < 0) continue;
    const body = line.slice(at + "GLINT:".length);
    const eq = body.indexOf("=");
    const key = eq < 0 ? body.trim() : body.slice(0, eq);
    const value = eq < 0 ? "" : body.slice(eq + 1);
    if (!/^[A-Za-z0-9_.:/-]+$/.test(key)) continue;
    const list = markers[key] ?? [];
    list.push(value);
    markers[key] = list;
  }
  return markers;
}

/** The single value of marker `key`; throws if it is absent or repeated. */
export function markerValue(markers: Markers, key: string): string {
  const values = markers[key];
  if (values === undefined || values.length !== 1 || values[0] === undefined) {
    throw new Error(`expected exactly one GLINT:${key}, got ${JSON.stringify(values ?? [])}`);
  }
  return values[0];
}

export interface RunResult {
  argv: string[];
  /** stdout (the guest's serial console when run with -nographic). */
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved in arrival order. */
  output: string;
  markers: Markers;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  /** The process printed GLINT:done but did not exit within `doneGraceMs` and was killed. */
  killedAfterDone: boolean;
}

/** Thrown on timeout, spawn failure, or (from bootGuest) a boot that did not finish. */
export class GuestRunError extends Error {
  readonly output: string;
  readonly result: RunResult | undefined;
  constructor(message: string, output: string, result?: RunResult) {
    const tail = output.length > 8000 ? `...${output.slice(-8000)}` : output;
    super(`${message}\n--- captured output ---\n${tail}`);
    this.name = "GuestRunError";
    this.output = output;
    this.result = result;
  }
}

export interface RunOptions {
  cwd?: string;
  /** Called with each stdout/stderr chunk (e.g. for live debugging). */
  onOutput?: (chunk: string) => void;
  /**
   * Once a `GLINT:done` line was printed, SIGKILL the process if it is still
   * running after this many ms (the guest's poweroff failed); the result then
   * has `killedAfterDone: true`. Default: wait for exit until `timeoutMs`.
   */
  doneGraceMs?: number;
}

/**
 * Spawn `argv` (no shell), capture stdout/stderr, parse markers. Resolves when
 * the process exits, whatever its exit code; rejects with {@link GuestRunError}
 * if it cannot be started or runs longer than `timeoutMs` (it is SIGKILLed).
 */
export function runAndCollect(
  argv: readonly string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
  options: RunOptions = {},
): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) return Promise.reject(new Error("runAndCollect: empty argv"));
  const started = performance.now();
  return new Promise<RunResult>((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    let output = "";
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (err) {
      reject(new GuestRunError(`cannot start ${command}: ${String(err)}`, ""));
      return;
    }
    let timedOut = false;
    let killedAfterDone = false;
    let doneTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      output += chunk;
      options.onOutput?.(chunk);
      const grace = options.doneGraceMs;
      if (
        grace !== undefined &&
        doneTimer === undefined &&
        /GLINT:done\r?\n/.test(stdout.slice(-(chunk.length + 16)))
      ) {
        doneTimer = setTimeout(() => {
          killedAfterDone = true;
          child.kill("SIGKILL");
        }, grace);
      }
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      output += chunk;
      options.onOutput?.(chunk);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      clearTimeout(doneTimer);
      reject(new GuestRunError(`cannot start ${command}: ${err.message}`, output));
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(doneTimer);
      const result: RunResult = {
        argv: [...argv],
        stdout,
        stderr,
        output,
        markers: parseMarkers(stdout),
        exitCode,
        signal,
        durationMs: Math.round(performance.now() - started),
        killedAfterDone,
      };
      if (timedOut) {
        reject(new GuestRunError(`${command} timed out after ${timeoutMs} ms`, output, result));
      } else {
        resolve(result);
      }
    });
  });
}

export interface BootGuestOptions {
  /** QEMU arguments (appended to `command`). */
  qemuArgs: readonly string[];
  timeoutMs?: number;
  /** Command prefix, e.g. ["node", "dist/cli/main.js", "run", "vm", "--"]; default qemu-system-x86_64. */
  command?: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Reject unless the guest printed GLINT:done and the process exited 0 (default true). */
  requireDone?: boolean;
  /** See {@link RunOptions.doneGraceMs}; default 20 s. */
  doneGraceMs?: number;
  onOutput?: (chunk: string) => void;
}

/** Boot the tiny guest and return its output and markers. */
export async function bootGuest(opts: BootGuestOptions): Promise<RunResult> {
  const argv = [...(opts.command ?? ["qemu-system-x86_64"]), ...opts.qemuArgs];
  const result = await runAndCollect(argv, opts.env, opts.timeoutMs ?? 120_000, {
    cwd: opts.cwd,
    onOutput: opts.onOutput,
    doneGraceMs: opts.doneGraceMs ?? 20_000,
  });
  if (opts.requireDone ?? true) {
    if (result.markers.done === undefined) {
      throw new GuestRunError(
        `guest did not print GLINT:done (exit ${result.exitCode ?? result.signal})`,
        result.output,
        result,
      );
    }
    if (result.killedAfterDone) {
      throw new GuestRunError(
        "guest printed GLINT:done but QEMU did not exit: poweroff failed (ACPI unusable?)",
        result.output,
        result,
      );
    }
    if (result.exitCode !== 0) {
      throw new GuestRunError(`${argv[0]} exited ${result.exitCode}`, result.output, result);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------
// Fixtures: disks, cidata, OVMF, swtpm
// ---------------------------------------------------------------------------

/** Create an empty disk image with qemu-img. */
export async function createBlankDisk(
  path: string,
  size = "16M",
  format: "qcow2" | "raw" = "qcow2",
): Promise<string> {
  await execFileAsync("qemu-img", ["create", "-q", "-f", format, path, size]);
  return path;
}

/** Make an ISO9660 (Joliet + Rock Ridge) volume labelled `cidata` holding `files`. */
export async function createCidataIso(
  path: string,
  files: Readonly<Record<string, string | Buffer>>,
  label = "cidata",
): Promise<string> {
  const staging = await mkdtemp(join(tmpdir(), "glint-cidata-"));
  try {
    for (const [name, content] of Object.entries(files)) {
      const dest = join(staging, name);
      await mkdir(dirname(dest), { recursive: true });
      await writeFile(dest, content, { mode: 0o755 });
    }
    await execFileAsync("genisoimage", [
      "-quiet",
      "-output",
      path,
      "-volid",
      label,
      "-joliet",
      "-rock",
      staging,
    ]);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return path;
}

export interface OvmfFiles {
  code: string;
  vars: string;
}

/** Locate the (non-secure-boot) OVMF code/vars pair; throws with an install hint. */
export function findOvmf(dir = "/usr/share/OVMF"): OvmfFiles {
  for (const [code, vars] of [
    ["OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"],
    ["OVMF_CODE.fd", "OVMF_VARS.fd"],
  ] as const) {
    if (existsSync(join(dir, code)) && existsSync(join(dir, vars))) {
      return { code: join(dir, code), vars: join(dir, vars) };
    }
  }
  throw new Error(`no OVMF firmware in ${dir}; apt-get install ovmf`);
}

/**
 * Copy the OVMF vars template to `varsCopy` and return the two pflash drives.
 * Reuse the same `varsCopy` across boots to keep EFI variables.
 */
export async function ovmfArgs(
  varsCopy: string,
  fresh = true,
  ovmf = findOvmf(),
): Promise<string[]> {
  if (fresh || !existsSync(varsCopy)) await copyFile(ovmf.vars, varsCopy);
  return [
    "-drive",
    `if=pflash,format=raw,unit=0,readonly=on,file=${ovmf.code}`,
    "-drive",
    `if=pflash,format=raw,unit=1,file=${varsCopy}`,
  ];
}

export interface Swtpm {
  stateDir: string;
  socket: string;
  /** QEMU arguments attaching this TPM as a CRB (or TIS) device. */
  qemuArgs: (device?: "tpm-crb" | "tpm-tis") => string[];
  /** Kill swtpm (if still running) and wait for it to exit. */
  stop: () => Promise<void>;
}

async function waitForPath(path: string, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Manufacture a TPM 2.0 state in `stateDir` with swtpm_setup (EK + certs) unless
 * one exists, then start `swtpm socket` on `<stateDir>/swtpm.sock`.
 * QEMU shuts swtpm down when it exits: start one instance per boot (the state
 * directory persists across instances).
 */
export async function startSwtpm(stateDir: string, manufacture = true): Promise<Swtpm> {
  await mkdir(stateDir, { recursive: true });
  if (manufacture && !existsSync(join(stateDir, "tpm2-00.permall"))) {
    await execFileAsync("swtpm_setup", [
      "--tpm2",
      "--tpmstate",
      stateDir,
      "--create-ek-cert",
      "--create-platform-cert",
      "--overwrite",
      "--config",
      "/etc/swtpm_setup.conf",
    ]);
  }
  const socket = join(stateDir, "swtpm.sock");
  await rm(socket, { force: true });
  const child = spawn(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${stateDir}`,
      "--ctrl",
      `type=unixio,path=${socket}`,
      "--log",
      `file=${join(stateDir, "swtpm.log")},level=1`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await waitForPath(socket, 10_000, child);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    stateDir,
    socket,
    qemuArgs: (device = "tpm-crb") => [
      "-chardev",
      `socket,id=chrtpm,path=${socket}`,
      "-tpmdev",
      "emulator,id=tpm0,chardev=chrtpm",
      "-device",
      `${device},tpmdev=tpm0`,
    ],
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
