/**
 * `<home>/<vm>/config.json`: the choices made at `glint create` time.
 * Unknown keys (e.g. from the seed prototype) are preserved.
 */
import * as z from "zod";
import { timestamp } from "../identity/formats.js";

export const FIRMWARE_KINDS = ["bios", "uefi", "uefi-secure"] as const;
export type FirmwareKind = (typeof FIRMWARE_KINDS)[number];

export const NET_MODES = ["user", "bridge", "tap", "none"] as const;
export type NetMode = (typeof NET_MODES)[number];

/** Where the guest's hostname comes from: the VM name, or `glint-<machine-id>`. */
export const HOSTNAME_SOURCES = ["name", "machine-id"] as const;
export type HostnameFrom = (typeof HOSTNAME_SOURCES)[number];
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
  nics: z.number().int().min(1).max(16).default(1),
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
