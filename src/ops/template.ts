/**
 * Identity templates meet VM creation here, in one place: `glint create VM
 * --template NAME` (and every VM of a bulk create) resolves its options
 * through {@link applyTemplate}, and `glint template save NAME --from VM`
 * turns a VM's config back into a template ({@link templateFromConfig}).
 */
import { UsageError } from "../errors.js";
import { hostnameFromPattern } from "../guest/hostname.js";
import { readTemplate, TEMPLATE_SCHEMA_VERSION, type Template } from "../templates/index.js";
import type { VmConfig } from "../vm/config.js";
import type { DiskAndFirmwareOptions } from "./provision.js";

/** `value` unless the caller set the option (`given`). */
function pick<T>(given: T | undefined, value: T | undefined): T | undefined {
  return given !== undefined ? given : value;
}

/**
 * The create options of VM `vm` with template `options.template` applied:
 * each option the caller left undefined takes the template's value. Without
 * a template the options are returned as they are. A template's hostname
 * pattern is checked against the VM name here, before anything is created.
 */
export async function applyTemplate(
  home: string,
  vm: string,
  options: DiskAndFirmwareOptions,
): Promise<DiskAndFirmwareOptions> {
  if (options.template === undefined) {
    if (options.hostnamePattern !== undefined) hostnameFromPattern(options.hostnamePattern, vm);
    return options;
  }
  const { template: t } = await readTemplate(home, options.template);
  const o = options;
  // The base comes as a whole: a template's overlay only goes with the template's base.
  const ownBase = o.base !== undefined || o.diskSize !== undefined;
  const merged: DiskAndFirmwareOptions = {
    ...o,
    ...defined({
      firmware: pick(o.firmware, t.firmware),
      tpm: pick(o.tpm, t.tpm),
      tpmModel: pick(o.tpmModel, t.tpm_model),
      memoryMb: pick(o.memoryMb, t.memory_mb),
      cpus: pick(o.cpus, t.cpus),
      nics: pick(o.nics, t.nics),
      net: pick(o.net, t.net),
      base: ownBase ? o.base : (t.base ?? undefined),
      overlay: ownBase ? o.overlay : pick(o.overlay, t.overlay),
      diskSize: ownBase ? o.diskSize : t.disk_size,
      hostnameFrom: pick(o.hostnameFrom, t.hostname_from),
      hostnamePattern: pick(o.hostnamePattern, t.hostname_pattern),
      macPrefix: pick(o.macPrefix, t.mac_prefix),
      serialFormats: pick(o.serialFormats, t.serial_formats),
      smbios: pick(o.smbios, t.smbios),
      oemStrings: pick(o.oemStrings, t.oem_strings),
      cloud: pick(o.cloud, t.cloud),
    }),
  };
  if (merged.hostnamePattern !== undefined) hostnameFromPattern(merged.hostnamePattern, vm);
  if (merged.hostnamePattern !== undefined && merged.hostnameFrom === "machine-id") {
    throw new UsageError(
      `template "${options.template}" names hosts with a pattern; it cannot go with --hostname-from machine-id`,
    );
  }
  return merged;
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A template that makes VMs like one whose config is `config`: its hardware,
 * firmware, base, hostname pattern, MAC prefix, serial formats, SMBIOS and
 * OEM strings and cloud profile (not its identity).
 */
export function templateFromConfig(config: VmConfig, description?: string): Template {
  return {
    schema_version: TEMPLATE_SCHEMA_VERSION,
    ...(description === undefined ? {} : { description }),
    firmware: config.firmware,
    tpm: config.tpm,
    ...(config.tpm ? { tpm_model: config.tpm_model } : {}),
    memory_mb: config.memory_mb,
    cpus: config.cpus,
    nics: config.nics,
    net: config.net,
    ...(config.base ? { base: config.base.source, overlay: config.overlay } : {}),
    ...(config.disk_size !== null ? { disk_size: config.disk_size } : {}),
    hostname_from: config.hostname_from,
    ...(config.hostname_pattern !== null ? { hostname_pattern: config.hostname_pattern } : {}),
    ...(config.mac_prefix !== null ? { mac_prefix: config.mac_prefix } : {}),
    ...(config.serial_formats !== null ? { serial_formats: config.serial_formats } : {}),
    ...(Object.keys(config.smbios).length ? { smbios: config.smbios } : {}),
    ...(config.oem_strings.length ? { oem_strings: config.oem_strings } : {}),
    cloud: config.cloud,
  };
}
