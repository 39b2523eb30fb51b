/**
 * The tiny guest as a test fixture: the host's Debian kernel plus a busybox
 * initramfs, built once and reused from the cache (see cache.ts), and the
 * media tests attach to it (blank disks, a cidata ISO, OVMF flash drives).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { buildInitramfs } from "./initramfs.js";
import { findKernel } from "./kernel.js";

const execFileAsync = promisify(execFile);

export interface TinyGuest {
  /** The bzImage to pass as -kernel. */
  kernel: string;
  /** The initramfs to pass as -initrd. */
  initrd: string;
}

export interface TinyGuestOptions {
  /** Extra files for the initramfs, keyed by absolute guest path. */
  extraFiles?: Readonly<Record<string, string | Buffer>>;
}

/** Build (or reuse from the cache) the tiny guest: Debian kernel + busybox initramfs. */
export async function tinyGuest(options: TinyGuestOptions = {}): Promise<TinyGuest> {
  const kernel = findKernel();
  const initrd = await buildInitramfs({ kernel, extraFiles: options.extraFiles });
  return { kernel: kernel.kernel, initrd };
}

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
