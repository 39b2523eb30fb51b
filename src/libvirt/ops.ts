/**
 * `glint libvirt export|define|sync`: a Glint VM as a libvirt domain. The
 * import is in import.ts.
 */
import { accessSync, existsSync, promises as fs, constants as fsConstants } from "node:fs";
import { BusyError, glintError } from "../errors.js";
import { hostnameFor, seedFileOf } from "../guest/index.js";
import { requireTool } from "../host/tools.js";
import { extraMacsOf } from "../identity/model.js";
import type { UsableVm, UuidManager } from "../manager.js";
import { vmFirmware } from "../ops/run.js";
import { writeFileAtomic } from "../vm/atomic.js";
import { libvirtBackupPath } from "../vm/layout.js";
import { writeConfig } from "../vm/store.js";
import { assertDomainName, buildDomain, type DomainInput, type DomainType } from "./domain.js";
import { patchDomain } from "./patch.js";
import { readDomain } from "./read.js";
import { libvirtTpmState, placeTpmState, removeTpmState, swtpmDir } from "./state.js";
import {
  defineXml,
  domainExists,
  domainState,
  dumpXml,
  isActive,
  undefine,
  type VirshOptions,
} from "./virsh.js";
import { renderXml } from "./xml.js";

export type DomainTypeChoice = DomainType | "auto";

/** `kvm` when this user can open /dev/kvm, else `qemu` (TCG). */
export function chooseDomainType(choice: DomainTypeChoice = "auto", kvm = "/dev/kvm"): DomainType {
  if (choice !== "auto") return choice;
  try {
    accessSync(kvm, fsConstants.R_OK | fsConstants.W_OK);
    return "kvm";
  } catch {
    return "qemu";
  }
}

/** The domain inputs of a usable VM. */
export async function domainInputOf(
  vm: UsableVm,
  name: string,
  type: DomainType,
  env: NodeJS.ProcessEnv,
): Promise<DomainInput> {
  const { paths, ids, config } = vm;
  const firmware = await vmFirmware(config, paths, env);
  const disk = config.overlay ? paths.overlay : existsSync(paths.base) ? paths.base : undefined;
  // seed.iso (NoCloud), or config-drive.iso for the OpenStack profile.
  const seed = seedFileOf(paths, config.cloud);
  return {
    name,
    vm: paths.name,
    ids,
    extraMacs: [...extraMacsOf(ids)],
    config,
    type,
    emulator: await requireTool("qemu-system-x86_64", env),
    ...(firmware ? { firmware } : {}),
    ...(disk !== undefined ? { disk } : {}),
    ...(existsSync(seed) ? { seedIso: seed } : {}),
    shareDir: paths.shared,
    hostname: hostnameFor(paths.name, ids, config.hostname_from, config.hostname_pattern),
  };
}

export interface ExportOptions {
  readonly name?: string | undefined;
  readonly type?: DomainTypeChoice | undefined;
}

/** The domain XML of VM `vm` (reads only). */
export async function exportDomain(
  manager: UuidManager,
  vm: string,
  options: ExportOptions,
  env: NodeJS.ProcessEnv,
): Promise<{ domain: string; xml: string }> {
  const usable = await manager.usable(vm);
  const domain = options.name ?? usable.config.libvirt?.domain ?? vm;
  const input = await domainInputOf(usable, domain, chooseDomainType(options.type), env);
  return { domain, xml: renderXml(buildDomain(input)) };
}

export interface DaemonOptions extends ExportOptions {
  /** libvirt URI (`--connect`); default: the one recorded at define/import, else virsh's. */
  readonly uri?: string | undefined;
  /** Where libvirt keeps emulated TPM state (`--swtpm-dir`). */
  readonly swtpmDir?: string | undefined;
}

export interface DefineResult {
  readonly vm: string;
  readonly domain: string;
  readonly uuid: string;
  readonly uri: string | null;
  /** libvirt's TPM state directory Glint filled, when the VM has a TPM. */
  readonly tpm_state: string | null;
}

function virshOptions(uri: string | undefined, env: NodeJS.ProcessEnv): VirshOptions {
  return { ...(uri !== undefined ? { uri } : {}), env };
}

function missingNvram(vm: UsableVm) {
  return glintError("not-found", `${vm.paths.uefiInstance} is missing`, {
    vm: vm.paths.name,
    file: vm.paths.uefiInstance,
    reason: "uefi-instance",
  });
}

/** `glint libvirt define`: define the VM's domain; refused if a domain of that name exists. */
export async function defineDomain(
  manager: UuidManager,
  vm: string,
  options: DaemonOptions,
  env: NodeJS.ProcessEnv,
): Promise<DefineResult> {
  return manager.withUsableVm(vm, "glint libvirt define", async (usable) => {
    const domain = options.name ?? usable.config.libvirt?.domain ?? vm;
    assertDomainName(domain);
    const uri = options.uri ?? usable.config.libvirt?.uri ?? undefined;
    const virshOpts = virshOptions(uri, env);
    if (await domainExists(domain, virshOpts)) {
      throw glintError("conflict", `libvirt domain "${domain}" exists already`, {
        vm,
        reason: "domain-exists",
      });
    }
    if (usable.config.firmware !== "bios" && !existsSync(usable.paths.uefiInstance)) {
      throw missingNvram(usable);
    }
    const input = await domainInputOf(usable, domain, chooseDomainType(options.type), env);
    // Everything that can fail before a change comes first.
    const xml = renderXml(buildDomain(input));
    const root = swtpmDir(options.swtpmDir, env);
    const uuid = usable.ids.vm_uuid;
    const hadState = libvirtTpmState(root, uuid) !== undefined;
    const tpmState = usable.config.tpm ? await placeTpmState(usable.paths.tpm, root, uuid) : null;
    try {
      await defineXml(xml, virshOpts);
    } catch (error) {
      if (tpmState !== null && !hadState) await removeTpmState(root, uuid);
      throw error;
    }
    await writeConfig(usable.paths, {
      ...usable.config,
      libvirt: { ...usable.config.libvirt, domain, uri: uri ?? null },
    });
    return { vm, domain, uuid, uri: uri ?? null, tpm_state: tpmState };
  });
}

export interface SyncResult extends DefineResult {
  /** The domain's UUID before the sync (it differs after a regeneration that drew a new vm_uuid). */
  readonly previous_uuid: string | null;
  /** The copy of the domain XML that was replaced, in history/. */
  readonly backup: string;
}

/**
 * `glint libvirt sync`: write the VM's current identity into its domain,
 * keeping the rest of the definition. Refused while the domain runs.
 */
export async function syncDomain(
  manager: UuidManager,
  vm: string,
  options: DaemonOptions,
  env: NodeJS.ProcessEnv,
): Promise<SyncResult> {
  return manager.withUsableVm(vm, "glint libvirt sync", async (usable) => {
    const domain = options.name ?? usable.config.libvirt?.domain ?? vm;
    assertDomainName(domain);
    const uri = options.uri ?? usable.config.libvirt?.uri ?? undefined;
    const virshOpts = virshOptions(uri, env);
    const state = await domainState(domain, virshOpts);
    if (isActive(state)) {
      throw new BusyError(
        `libvirt domain "${domain}" is ${state}: glint libvirt sync changes it only while it is shut off`,
        { vm, reason: "domain-running" },
      );
    }
    if (usable.config.firmware !== "bios" && !existsSync(usable.paths.uefiInstance)) {
      throw missingNvram(usable);
    }
    const current = await dumpXml(domain, virshOpts);
    const facts = readDomain(current, `the XML of domain "${domain}"`);
    const type = facts.type === "kvm" || facts.type === "qemu" ? facts.type : chooseDomainType();
    const input = await domainInputOf(usable, domain, type, env);
    const next = patchDomain(current, buildDomain(input), `the XML of domain "${domain}"`);
    const backup = libvirtBackupPath(usable.paths, domain);
    await fs.mkdir(usable.paths.history, { recursive: true });
    await writeFileAtomic(backup, current);
    const root = swtpmDir(options.swtpmDir, env);
    const uuid = usable.ids.vm_uuid;
    const tpmState = usable.config.tpm ? await placeTpmState(usable.paths.tpm, root, uuid) : null;
    if (facts.uuid !== undefined && facts.uuid !== uuid) {
      // libvirt keeps a domain's UUID for its life: a new one means a new definition.
      await undefine(domain, virshOpts);
      try {
        await defineXml(next, virshOpts);
      } catch (error) {
        await defineXml(current, virshOpts);
        throw error;
      }
    } else {
      await defineXml(next, virshOpts);
    }
    await writeConfig(usable.paths, {
      ...usable.config,
      libvirt: { ...usable.config.libvirt, domain, uri: uri ?? null },
    });
    return {
      vm,
      domain,
      uuid,
      uri: uri ?? null,
      tpm_state: tpmState,
      previous_uuid: facts.uuid ?? null,
      backup,
    };
  });
}
