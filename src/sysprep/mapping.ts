/**
 * Which identifier of identifiers.json goes where in a disk image: the table
 * the engine follows and the README quotes (see `sysprepMappingMarkdown`).
 */

export interface SysprepMappingRow {
  /** The identity field, or what the value comes from. */
  readonly source: string;
  /** Where it is written in the image. */
  readonly target: string;
  readonly how: string;
}

export const SYSPREP_MAPPING: readonly SysprepMappingRow[] = [
  {
    source: "disk_uuid",
    target: "GPT disk GUID (MBR: disk signature = its first 8 hex digits)",
    how: "both GPT headers, CRCs recomputed (MBR: 4 bytes at offset 440)",
  },
  {
    source: "partition_uuid",
    target: "PARTUUID of the partition holding / (GPT only)",
    how: "both GPT partition arrays, CRCs recomputed",
  },
  {
    source: "filesystem_uuid",
    target: "UUID of the filesystem mounted at /",
    how: "tune2fs -O metadata_csum_seed -U",
  },
  {
    source: "boot_uuid",
    target:
      "UUID of the filesystem mounted at /boot; without one, the EFI system partition's vfat volume ID (XXXX-XXXX from its first 8 hex digits)",
    how: "tune2fs -U / xfs_admin -U / the boot sector and its backup",
  },
  {
    source: "swap_uuid",
    target: "UUID of the (first) swap partition",
    how: "16 bytes at offset 1036 of the swap header",
  },
  {
    source: "the whole identity (VM operations only)",
    target:
      "/etc/glint/applied, the first-boot script's record, so that it keeps the clone's first-boot state (SSH host keys, the DHCP lease and its DUID)",
    how: "debugfs mkdir / write",
  },
  {
    source: "fresh random",
    target:
      "every other PARTUUID and filesystem UUID (xfs, LUKS header, more swap, vfat); kept in the VM's config",
    how: "GPT arrays, tune2fs -U, xfs_admin -U, cryptsetup luksUUID, boot sector",
  },
  {
    source: "machine_id",
    target: "/etc/machine-id, and /var/lib/dbus/machine-id when it is a regular file",
    how: "debugfs",
  },
  {
    source: "VM name",
    target: "/etc/hostname and the 127.0.1.1 line of /etc/hosts",
    how: "debugfs",
  },
  {
    source: "generated",
    target: "SSH host keys, of the types the image had, same modes and owners",
    how: "ssh-keygen, written with debugfs",
  },
  {
    source: "cleared",
    target:
      "DHCP leases (dhclient, dhcpcd, NetworkManager), 70-persistent-net.rules, MAC lines of NetworkManager keyfiles and /etc/network/interfaces, cloud-init instance state",
    how: "debugfs rm / rewrite",
  },
  {
    source: "fresh random",
    target: "/var/lib/systemd/random-seed (when present)",
    how: "512 bytes from node:crypto",
  },
  {
    source: "references",
    target:
      "old UUIDs, PARTUUIDs and vfat IDs in /etc/fstab, /etc/crypttab, /etc/default/grub(.d), /etc/initramfs-tools/conf.d/resume, /etc/kernel/cmdline, grub.cfg and loader entries on /boot and the ESP",
    how: "rewritten in place",
  },
];

/** The mapping as a Markdown table. */
export function sysprepMappingMarkdown(): string {
  const rows = SYSPREP_MAPPING.map((r) => `| ${r.source} | ${r.target} | ${r.how} |`);
  return ["| From | Written to | How |", "|---|---|---|", ...rows].join("\n");
}
