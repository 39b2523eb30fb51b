/**
 * The tiny guest's kernel: the newest Debian kernel on the host that has its
 * modules, its ELF vmlinux (for fast PVH boots), and the plan of which
 * modules the guest must load (dependencies first) for the devices it checks.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { DEFAULT_CACHE_DIR, inputsHash, tempSibling } from "./cache.js";

const execFileAsync = promisify(execFile);

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
 * Extract the uncompressed ELF `vmlinux` from a bzImage (cached in `cacheDir`,
 * keyed by a hash of the bzImage).
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
  const out = join(cacheDir, `vmlinux-${kernel.version}-${inputsHash([image])}`);
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
  const tmp = tempSibling(out);
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

// --- Module selection --------------------------------------------------------

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

export async function readModule(file: string): Promise<Buffer> {
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
