/**
 * `glint edit`: change a stopped VM's machine (the caller holds its lock,
 * through Engine.withVm, which also refuses while its QEMU runs).
 *
 * - memory, CPUs and the NIC count are config.json values; more NICs get
 *   their extra MACs at once (src/ops/nics.ts);
 * - `diskSize` grows the VM's own disk (its overlay, else its base copy)
 *   with `qemu-img resize`, never shrinking it and never touching a linked base;
 * - a firmware change gives the VM fresh NVRAM for the new firmware (the old
 *   uefi-instance.fd goes to history/ first); `bios` removes it;
 * - adding a TPM manufactures one with swtpm, as `glint create --tpm` does;
 *   removing it keeps the old TPM state in history/.
 * Files are created before config.json names them, and removed only after it
 * stops naming them, so a process killed halfway leaves a VM that boots.
 */
import { existsSync, promises as fs } from "node:fs";
import { GlintError, UsageError } from "../errors.js";
import { createTpmState, installUefiVars, resolveFirmware } from "../firmware/index.js";
import { runTool } from "../host/tools.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { imageInfo } from "../qemu/index.js";
import { DISK_SIZE_RE, type FirmwareKind, type VmConfig } from "../vm/config.js";
import { storePaths, tpmStateFile, type VmPaths } from "../vm/layout.js";
import { archiveFile, readConfigOrDefault, writeConfig } from "../vm/store.js";

export interface EditChanges {
  readonly memoryMb?: number | undefined;
  readonly cpus?: number | undefined;
  readonly diskSize?: string | undefined;
  readonly firmware?: FirmwareKind | undefined;
  readonly tpm?: boolean | undefined;
  readonly nics?: number | undefined;
}

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

function bytes(size: string): number {
  const m = /^([0-9]+)([KMGT]?)$/.exec(size);
  return Number(m?.[1] ?? 0) * (UNITS[m?.[2] ?? ""] ?? 1);
}

/** Check the changes alone (before anything is read); a usage error for a bad one. */
export function checkEdit(c: EditChanges): void {
  if (Object.values(c).every((v) => v === undefined)) {
    throw new UsageError(
      "nothing to change: give --memory, --cpus, --disk-size, --nics, --firmware or --tpm/--no-tpm",
    );
  }
  if (c.diskSize !== undefined && !DISK_SIZE_RE.test(c.diskSize))
    throw new UsageError(`--disk-size: '${c.diskSize}' is not a size like 512M or 8G`);
  if (c.memoryMb !== undefined && (c.memoryMb < 16 || c.memoryMb > 1048576))
    throw new UsageError("--memory: from 16 to 1048576 MiB");
  if (c.cpus !== undefined && (c.cpus < 1 || c.cpus > 255))
    throw new UsageError("--cpus: from 1 to 255");
  if (c.nics !== undefined && (c.nics < 1 || c.nics > 16))
    throw new UsageError("--nics: from 1 to 16");
}

/**
 * What the changes do to a VM with `config`, one phrase each (for the
 * question and the output); a change to the current value is left out.
 * Throws for a change this VM cannot take.
 */
export function describeEdit(paths: VmPaths, config: VmConfig, c: EditChanges): string[] {
  const out: string[] = [];
  if (c.memoryMb !== undefined && c.memoryMb !== config.memory_mb)
    out.push(`memory ${config.memory_mb} → ${c.memoryMb} MiB`);
  if (c.cpus !== undefined && c.cpus !== config.cpus) out.push(`CPUs ${config.cpus} → ${c.cpus}`);
  if (c.nics !== undefined && c.nics !== config.nics) {
    if (c.nics > 1 && (config.net === "none" || config.net === "tap")) {
      throw new UsageError(
        `--nics ${c.nics}: VM "${paths.name}" uses --net ${config.net} (${config.net === "tap" ? "one tap interface serves one NIC" : "no NIC"})`,
      );
    }
    out.push(`NICs ${config.nics} → ${c.nics}`);
  }
  if (c.diskSize !== undefined)
    out.push(`disk ${config.overlay ? paths.overlay : paths.base} grown to ${c.diskSize}`);
  if (c.firmware !== undefined && c.firmware !== config.firmware) {
    out.push(
      `firmware ${config.firmware} → ${c.firmware}${config.firmware === "bios" ? "" : " (its UEFI variables are replaced; the old ones go to history/)"}`,
    );
  }
  if (c.tpm === true && !config.tpm) out.push("a new TPM");
  if (c.tpm === false && config.tpm) out.push("no TPM (its TPM state goes to history/)");
  return out;
}

export interface EditDeps {
  readonly env: NodeJS.ProcessEnv;
  /** Give the identity at least `count` extra MACs (see ensureExtraMacs). */
  readonly extraMacs: (ids: SystemIdentifiers, count: number) => Promise<unknown>;
  readonly identity: () => Promise<SystemIdentifiers>;
  readonly onProgress?: ((message: string) => void) | undefined;
}

async function growDisk(paths: VmPaths, config: VmConfig, size: string, env: NodeJS.ProcessEnv) {
  const disk = config.overlay ? paths.overlay : paths.base;
  if (!config.overlay && config.base?.linked) {
    throw new GlintError(
      `VM "${paths.name}" uses a linked base and no overlay; its disk is shared`,
      {
        code: "unsupported",
        details: { vm: paths.name, reason: "linked-base" },
      },
    );
  }
  if (!existsSync(disk)) {
    throw new GlintError(`VM "${paths.name}" has no disk to grow (${disk})`, {
      code: "unsupported",
      details: { vm: paths.name, file: disk, reason: "no-disk" },
    });
  }
  const info = await imageInfo(disk, { env });
  const wanted = bytes(size);
  if (wanted < info.virtualSize) {
    throw new UsageError(
      `--disk-size: ${size} is smaller than the disk (${info.virtualSize} bytes); glint never shrinks a disk`,
    );
  }
  if (wanted > info.virtualSize)
    await runTool("qemu-img", ["resize", "-q", disk, String(wanted)], { env });
}

/** Apply the changes to a stopped VM whose lock the caller holds; returns what changed. */
export async function editVm(paths: VmPaths, c: EditChanges, deps: EditDeps): Promise<string[]> {
  checkEdit(c);
  const config = await readConfigOrDefault(paths);
  const changed = describeEdit(paths, config, c);
  const next: VmConfig = {
    ...config,
    ...(c.memoryMb !== undefined ? { memory_mb: c.memoryMb } : {}),
    ...(c.cpus !== undefined ? { cpus: c.cpus } : {}),
    ...(c.nics !== undefined ? { nics: c.nics } : {}),
    ...(c.diskSize !== undefined && !config.base ? { disk_size: c.diskSize } : {}),
  };
  if (c.diskSize !== undefined) {
    deps.onProgress?.("growing the disk");
    await growDisk(paths, config, c.diskSize, deps.env);
  }
  if (c.nics !== undefined && c.nics > 1) {
    await deps.extraMacs(await deps.identity(), c.nics - 1);
  }
  const firmwareChange = c.firmware !== undefined && c.firmware !== config.firmware;
  if (firmwareChange && c.firmware !== undefined) {
    next.firmware = c.firmware;
    if (config.firmware !== "bios") {
      await archiveFile(paths, paths.uefiInstance, "edit");
    }
    if (c.firmware === "bios") next.firmware_code = null;
    else {
      deps.onProgress?.("installing fresh UEFI variables");
      const fw = await resolveFirmware(c.firmware, { env: deps.env });
      await installUefiVars(fw, paths.uefiSeed, paths.uefiInstance);
      next.firmware_code = fw.code;
    }
  }
  if (c.tpm === true && !config.tpm) {
    deps.onProgress?.("manufacturing the TPM");
    // A TPM directory left by an earlier --no-tpm was archived; never reused.
    await fs.rm(paths.tpm, { recursive: true, force: true });
    await createTpmState(paths.tpm, {
      vmName: paths.name,
      caDir: storePaths(paths.home).tpmCa,
      env: deps.env,
    });
    next.tpm = true;
  }
  const dropTpm = c.tpm === false && config.tpm;
  if (dropTpm) {
    await archiveFile(paths, tpmStateFile(paths), "edit");
    next.tpm = false;
  }
  await writeConfig(paths, next);
  // Only now that config.json no longer names them.
  if (dropTpm) await fs.rm(paths.tpm, { recursive: true, force: true });
  if (firmwareChange && c.firmware === "bios") {
    await fs.rm(paths.uefiInstance, { force: true });
    await fs.rm(paths.uefiSeed, { force: true });
  }
  return changed;
}
