/**
 * `glint libvirt import DOMAIN|FILE [--as VM]`: adopt an existing domain's
 * identity into a new Glint VM. Values in Glint's formats are taken (unless
 * another VM holds them, which is reported and drawn fresh, since Glint
 * never issues one value twice); values the domain lacks are drawn fresh.
 * The NVRAM and TPM state are copied in; the disks stay where they are.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { glintError, UsageError } from "../errors.js";
import { createTpmState, installUefiVars, resolveFirmware } from "../firmware/index.js";
import {
  EXTRA_MACS,
  extraMacsOf,
  IDENTIFIER_FIELDS,
  type SystemIdentifiers,
  type ValueField,
} from "../identity/model.js";
import type { UuidManager } from "../manager.js";
import { copyFileAtomic } from "../vm/atomic.js";
import { MAX_NICS, type VmConfig, vmConfigSchema } from "../vm/config.js";
import { assertVmName, storePaths, TPM2_PERMALL, type VmPaths } from "../vm/layout.js";
import type { Duplicate } from "../vm/registry.js";
import { writeConfig } from "../vm/store.js";
import {
  adoptable,
  adoptableExtraMacs,
  type DomainFacts,
  type Rejected,
  readDomain,
} from "./read.js";
import { libvirtTpmState, swtpmDir } from "./state.js";
import { dumpXml } from "./virsh.js";

export interface ImportOptions {
  /** The Glint VM name (default: the domain's name). */
  readonly as?: string | undefined;
  readonly uri?: string | undefined;
  readonly swtpmDir?: string | undefined;
  readonly onProgress?: (message: string) => void;
}

export interface ImportResult {
  readonly vm: string;
  readonly domain: string;
  readonly identifiers: SystemIdentifiers;
  /**
   * Fields whose value came from the domain; `extra_macs` when every NIC
   * after the first kept the domain's MAC.
   */
  readonly adopted: ValueField[];
  /**
   * Fields drawn fresh: the domain lacked them, or had them in another
   * format, or another VM holds them; `extra_macs` when any NIC after the
   * first got a fresh MAC.
   */
  readonly drawn: ValueField[];
  /** How many NICs the VM has: one per `<interface>` of the domain. */
  readonly nics: number;
  /** Domain values another VM holds (drawn fresh instead). */
  readonly collisions: Duplicate[];
  /** Domain values not in Glint's format, or repeated (drawn fresh instead). */
  readonly rejected: Rejected[];
  /** Where the TPM state came from: libvirt's state, or a fresh TPM. */
  readonly tpm: "adopted" | "fresh" | null;
}

/** A file argument, or a domain name. */
function looksLikeFile(source: string): boolean {
  return source.includes("/") || source.endsWith(".xml");
}

function configOf(facts: DomainFacts, uri: string | null): VmConfig {
  const nic = facts.nics[0];
  const count = facts.nics.length;
  if (count > MAX_NICS) {
    throw glintError(
      "invalid-file",
      `domain "${facts.name}" has ${count} NICs; a Glint VM has at most ${MAX_NICS}`,
      { reason: "too-many-nics" },
    );
  }
  // The first NIC decides the backend of all (a Glint VM's NICs share one);
  // one tap interface serves one NIC, so several NICs of type ethernet become `user`.
  const net =
    nic === undefined
      ? "none"
      : nic.type === "bridge" && nic.ifname
        ? "bridge"
        : nic.type === "ethernet" && nic.ifname && count === 1
          ? "tap"
          : "user";
  const disk = facts.disks.find((d) => d.device === "disk" && d.path !== undefined);
  const firmware = facts.efi === undefined ? "bios" : facts.efi.secure ? "uefi-secure" : "uefi";
  const parsed = vmConfigSchema.safeParse({
    firmware,
    firmware_code: facts.loader?.path ?? null,
    tpm: facts.tpm?.backend === "emulator",
    tpm_model: facts.tpm?.model === "tpm-tis" ? "tpm-tis" : "tpm-crb",
    base:
      disk?.path !== undefined && disk.format === "qcow2"
        ? { source: path.resolve(disk.path), linked: true }
        : null,
    overlay: false,
    net,
    net_ifname: net === "bridge" || net === "tap" ? (nic?.ifname ?? null) : null,
    nics: Math.max(1, count),
    memory_mb: Math.max(16, Math.min(1048576, facts.memoryMb ?? 512)),
    cpus: Math.max(1, Math.min(255, facts.cpus ?? 1)),
    // The domain's disks are not Glint's: never rewritten offline unless asked (`glint sysprep`).
    sysprep: false,
    created_at: new Date().toISOString(),
    libvirt: {
      domain: facts.name,
      uri,
      disks: facts.disks.flatMap((d) => (d.path === undefined ? [] : [path.resolve(d.path)])),
    },
  });
  if (!parsed.success) {
    throw glintError(
      "invalid-file",
      `domain "${facts.name}" cannot be a Glint VM: ${parsed.error.issues[0]?.message}`,
      {
        reason: "xml",
      },
    );
  }
  return parsed.data;
}

/** Config, base link, NVRAM and TPM of the adopted VM. */
async function setUp(
  paths: VmPaths,
  config: VmConfig,
  facts: DomainFacts,
  tpmSource: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  await writeConfig(paths, config);
  if (config.base?.linked) await fs.symlink(config.base.source, paths.base);
  if (config.firmware !== "bios") {
    const nvram = facts.nvram?.path;
    const template = facts.nvram?.template;
    if (template !== undefined && existsSync(template)) {
      await copyFileAtomic(template, paths.uefiSeed, { followSymlinks: true });
    } else {
      const fw = await resolveFirmware(config.firmware, { env });
      await installUefiVars(fw, paths.uefiSeed, paths.uefiInstance);
    }
    if (nvram !== undefined && existsSync(nvram)) {
      await copyFileAtomic(nvram, paths.uefiInstance, { followSymlinks: true });
    } else if (!existsSync(paths.uefiInstance)) {
      await copyFileAtomic(paths.uefiSeed, paths.uefiInstance);
    }
  }
  if (config.tpm) {
    if (tpmSource !== undefined) {
      await fs.mkdir(paths.tpm, { recursive: true, mode: 0o700 });
      await copyFileAtomic(tpmSource, path.join(paths.tpm, TPM2_PERMALL), { followSymlinks: true });
    } else {
      await createTpmState(paths.tpm, {
        vmName: paths.name,
        caDir: storePaths(paths.home).tpmCa,
        env,
      });
    }
  }
}

export async function importDomain(
  manager: UuidManager,
  source: string,
  options: ImportOptions,
  env: NodeJS.ProcessEnv,
): Promise<ImportResult> {
  const fromFile = looksLikeFile(source);
  let xml: string;
  if (fromFile) {
    xml = await fs.readFile(source, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw glintError(
        error.code === "ENOENT" ? "not-found" : "io",
        `cannot read ${source}: ${error.code ?? error.message}`,
        {
          file: source,
        },
      );
    });
  } else {
    xml = await dumpXml(source, {
      ...(options.uri !== undefined ? { uri: options.uri } : {}),
      env,
    });
  }
  const facts = readDomain(xml, fromFile ? source : `the XML of domain "${source}"`);
  const vm = options.as ?? facts.name;
  try {
    assertVmName(vm);
  } catch {
    throw new UsageError(
      `domain name "${vm.slice(0, 70)}" is not a valid VM name: give one with --as NAME (1–63 lowercase letters, digits and '-')`,
      { reason: "vm-name" },
    );
  }
  const { preset, rejected } = adoptable(facts.found);
  const macs = adoptableExtraMacs(facts.nics);
  const config = configOf(facts, fromFile ? null : (options.uri ?? null));
  const root = swtpmDir(options.swtpmDir, env);
  const tpmSource =
    config.tpm && facts.uuid !== undefined ? libvirtTpmState(root, facts.uuid) : undefined;
  const { result, collisions } = await manager.adoptVm(
    vm,
    (paths) => setUp(paths, config, facts, tpmSource, env),
    preset,
    {
      presetExtraMacs: macs.extra,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    },
  );
  const ids = result.identifiers;
  const adopted: ValueField[] = IDENTIFIER_FIELDS.filter(
    (f) => preset[f] !== undefined && ids[f] === preset[f],
  );
  const drawn: ValueField[] = IDENTIFIER_FIELDS.filter((f) => !adopted.includes(f));
  const extra = extraMacsOf(ids);
  if (extra.length > 0) {
    if (extra.every((m, i) => m === macs.extra[i])) adopted.push(EXTRA_MACS);
    else drawn.push(EXTRA_MACS);
  }
  return {
    vm,
    domain: facts.name,
    identifiers: ids,
    adopted,
    drawn,
    nics: config.net === "none" ? 0 : config.nics,
    collisions,
    rejected: [...rejected, ...macs.rejected],
    tpm: config.tpm ? (tpmSource !== undefined ? "adopted" : "fresh") : null,
  };
}
