/**
 * `<home>/<vm>/config.json`: the choices made at `glint create` time.
 * Unknown keys (e.g. from the seed prototype) are preserved.
 */
import * as z from "zod";
import { UsageError } from "../errors.js";
import {
  macPrefix,
  oemString,
  serialFormat,
  smbiosString,
  timestamp,
  VM_NAME_RE,
} from "../identity/formats.js";

export const FIRMWARE_KINDS = ["bios", "uefi", "uefi-secure"] as const;
export type FirmwareKind = (typeof FIRMWARE_KINDS)[number];

export const NET_MODES = ["user", "bridge", "tap", "none"] as const;
export type NetMode = (typeof NET_MODES)[number];

/** Where the guest's hostname comes from: the VM name, or `glint-<machine-id>`. */
export const HOSTNAME_SOURCES = ["name", "machine-id"] as const;
export type HostnameFrom = (typeof HOSTNAME_SOURCES)[number];
/** The cloud-init datasource a VM's seed is built for: a NoCloud seed or an OpenStack config drive. */
export const CLOUD_PROFILES = ["nocloud", "openstack"] as const;
export type CloudProfile = (typeof CLOUD_PROFILES)[number];

/**
 * The SMBIOS strings a template (or `glint template`) may set, and the QEMU
 * `-smbios` type and key each goes to.
 */
export const SMBIOS_FIELDS = {
  system_manufacturer: { type: 1, key: "manufacturer" },
  system_product: { type: 1, key: "product" },
  system_version: { type: 1, key: "version" },
  system_family: { type: 1, key: "family" },
  board_manufacturer: { type: 2, key: "manufacturer" },
  chassis_manufacturer: { type: 3, key: "manufacturer" },
  chassis_asset_tag: { type: 3, key: "asset" },
} as const;
export type SmbiosField = keyof typeof SMBIOS_FIELDS;

export const smbiosStringsSchema = z.strictObject({
  system_manufacturer: smbiosString.optional(),
  system_product: smbiosString.optional(),
  system_version: smbiosString.optional(),
  system_family: smbiosString.optional(),
  board_manufacturer: smbiosString.optional(),
  chassis_manufacturer: smbiosString.optional(),
  chassis_asset_tag: smbiosString.optional(),
});
export type SmbiosStrings = z.infer<typeof smbiosStringsSchema>;

/**
 * OEM-string prefixes Glint owns (its identifiers and systemd credentials);
 * a template's extra OEM strings may not use them.
 */
export const RESERVED_OEM_PREFIXES = ["glint.", "io.systemd.credential"] as const;

export const extraOemStrings = z
  .array(oemString)
  .max(16)
  .refine((a) => a.every((v) => !RESERVED_OEM_PREFIXES.some((p) => v.startsWith(p))), {
    message: `must not start with ${RESERVED_OEM_PREFIXES.map((p) => `"${p}"`).join(" or ")} (Glint's own OEM strings)`,
  });

/**
 * A guest hostname pattern: lowercase letters, digits and '-', with `{n}`
 * (the number at the end of the VM name) or `{name}` (the VM name).
 */
export const HOSTNAME_PATTERN_RE = /^(?=.*\{(n|name)\})([a-z0-9-]|\{n\}|\{name\}){1,63}$/;

export const hostnamePattern = z
  .string()
  .regex(
    HOSTNAME_PATTERN_RE,
    "must be lowercase letters, digits and '-' with {n} (the number ending the VM name) or {name}, e.g. web-{n}",
  );

/**
 * The hostname `pattern` gives VM `vmName`: `{name}` is the VM name, `{n}`
 * the number that ends it (`web-{n}` makes node-07 `web-07`). Throws a
 * UsageError when the VM name has no number for `{n}` or the result is not
 * a valid hostname.
 */
export function hostnameFromPattern(pattern: string, vmName: string): string {
  const n = /([0-9]+)$/.exec(vmName)?.[1];
  if (pattern.includes("{n}") && n === undefined) {
    throw new UsageError(
      `the hostname pattern ${JSON.stringify(pattern)} needs a VM name that ends in a number for {n} (e.g. ${vmName}-1)`,
      { reason: "hostname-pattern" },
    );
  }
  const hostname = pattern.replaceAll("{n}", n ?? "").replaceAll("{name}", vmName);
  if (!VM_NAME_RE.test(hostname)) {
    throw new UsageError(
      `the hostname pattern ${JSON.stringify(pattern)} gives VM ${vmName} the invalid hostname ${JSON.stringify(hostname)}: it must be 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
      { reason: "hostname-pattern" },
    );
  }
  return hostname;
}

export const serialFormatsSchema = z.strictObject({
  cpu: serialFormat.optional(),
  motherboard: serialFormat.optional(),
});

/** The most NICs a VM may have. */
export const MAX_NICS = 16;

/** Linux interface / bridge names: they reach QEMU options, so keep them strict. */
export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/** qemu-img sizes: a positive integer with an optional K/M/G/T suffix. */
export const DISK_SIZE_RE = /^[1-9][0-9]*[KMGT]?$/;

export const vmConfigSchema = z.looseObject({
  schema_version: z.literal(1).default(1),
  firmware: z.enum(FIRMWARE_KINDS).default("bios"),
  tpm: z.boolean().default(false),
  tpm_model: z.enum(["tpm-crb", "tpm-tis"]).default("tpm-crb"),
  /** Where base.qcow2 came from, and whether it is a symlink to a shared image. */
  base: z
    .strictObject({ source: z.string().min(1), linked: z.boolean() })
    .nullable()
    .default(null),
  overlay: z.boolean().default(false),
  /** Size of the blank disk when there is no base image, e.g. "8G". */
  disk_size: z
    .string()
    .regex(DISK_SIZE_RE, "must be a size like 512M or 8G")
    .nullable()
    .default(null),
  net: z.enum(NET_MODES).default("user"),
  /** Bridge name for net=bridge, tap interface for net=tap. */
  net_ifname: z
    .string()
    .regex(IFNAME_RE, "must be a Linux interface name")
    .nullable()
    .default(null),
  /** NICs on the `net` backend (`glint create --nics N`); each after the first gets an extra MAC. */
  nics: z.number().int().min(1).max(MAX_NICS).default(1),
  memory_mb: z.number().int().min(16).max(1048576).default(512),
  cpus: z.number().int().min(1).max(255).default(1),
  hostname_from: z.enum(HOSTNAME_SOURCES).default("name"),
  /** Apply the identity offline to the VM's own disk (`glint create --no-sysprep` turns it off). */
  sysprep: z.boolean().default(true),
  /**
   * Fresh values sysprep drew for partitions the identity does not name
   * (report.freshValues), so that later runs give them the same values.
   */
  sysprep_values: z.record(z.string(), z.string()).default({}),
  /**
   * The OVMF code chosen at create time, matching the NVRAM template copied
   * into uefi-seed.fd; runs keep using it while it exists.
   */
  firmware_code: z.string().min(1).nullable().default(null),
  /** The template the VM was created from (informative). */
  template: z.string().nullable().default(null),
  /** The guest hostname's pattern (see {@link hostnamePattern}); null: from hostname_from. */
  hostname_pattern: hostnamePattern.nullable().default(null),
  /** MAC prefix of this VM's draws; null: the home's. */
  mac_prefix: macPrefix.nullable().default(null),
  /** Serial formats of this VM's draws; null: Glint's defaults. */
  serial_formats: serialFormatsSchema.nullable().default(null),
  /** SMBIOS strings given to QEMU (`-smbios type=1|2|3`). */
  smbios: smbiosStringsSchema.default({}),
  /** Extra SMBIOS OEM strings (`-smbios type=11`). */
  oem_strings: extraOemStrings.default([]),
  /** nocloud: seed.iso (label cidata); openstack: config-drive.iso (label config-2) and Nova's SMBIOS. */
  cloud: z.enum(CLOUD_PROFILES).default("nocloud"),
  created_at: timestamp.optional(),
  /**
   * The libvirt domain this VM was defined as or imported from
   * (`glint libvirt define|import`), and the daemon's URI (null: virsh's default).
   */
  libvirt: z
    .strictObject({
      domain: z.string().min(1),
      uri: z.string().min(1).nullable(),
      /** The domain's disks when it was imported (they stay where they are). */
      disks: z.array(z.string().min(1)).optional(),
    })
    .optional(),
});

export type VmConfig = z.infer<typeof vmConfigSchema>;
export type VmConfigInput = z.input<typeof vmConfigSchema>;

/** Defaults for a VM created with no options. */
export function defaultConfig(): VmConfig {
  return vmConfigSchema.parse({});
}

/** How many of the VM's own NICs come after the first (none with net=none). */
export function extraNicCount(config: Pick<VmConfig, "net" | "nics">): number {
  return config.net === "none" ? 0 : config.nics - 1;
}
