/**
 * Where every identifier goes: the single table that says which QEMU option
 * carries each field of identifiers.json and where a Linux guest reads it.
 * `applyIdentifiersToQemuCommand` (argv.ts) places values by walking this
 * table, and the README quotes {@link mappingTableMarkdown}.
 */
import { canonicalHex } from "../identity/formats.js";
import { IDENTIFIER_FIELDS, type IdentifierField } from "../identity/model.js";

/** How a value reaches QEMU. */
export type QemuPlacement =
  /** `-uuid <v>` (QEMU also uses it as the SMBIOS type 1 UUID). */
  | { readonly kind: "uuid" }
  /** `mac=<v>` on the first NIC (`-nic`, `-net nic` as `macaddr=`, or a NIC `-device`). */
  | { readonly kind: "nic-mac" }
  /** `serial=<v>` on the first `-device virtio-blk-*` (the system disk). */
  | { readonly kind: "disk-serial" }
  /** `-device vmgenid,guid=<v>`. */
  | { readonly kind: "vmgenid" }
  /** `-smbios type=<type>,serial=<v>`. */
  | { readonly kind: "smbios-serial"; readonly type: 1 | 2 | 3 | 4 }
  /** One `value=<prefix><v>` of the `-smbios type=11` (OEM strings) option. */
  | { readonly kind: "oem-string"; readonly prefix: string };

/** One place a field is written to. */
export interface IdentityTarget {
  readonly placement: QemuPlacement;
  /** The text QEMU receives, computed from the (validated) identifier value. */
  readonly derive: (value: string) => string;
  /** The option as a reader sees it, e.g. `-smbios type=2,serial=<value>`. */
  readonly option: string;
  /** Where a Linux guest reads it. */
  readonly guest: string;
}

export interface IdentityMappingRow {
  readonly field: IdentifierField;
  readonly targets: readonly IdentityTarget[];
}

/** Prefix of the OEM strings that carry Glint's own identifiers (`glint.<field>=<value>`). */
export const GLINT_OEM_PREFIX = "glint.";
/** systemd (≥ 254) reads this credential from SMBIOS OEM strings as /etc/machine-id on first boot. */
export const MACHINE_ID_CREDENTIAL = "io.systemd.credential:system.machine_id=";
/** systemd sets the (transient) hostname from this credential (systemd.system-credentials(7)). */
export const HOSTNAME_CREDENTIAL = "io.systemd.credential:system.hostname=";

/**
 * OEM-string prefixes that Glint owns: on re-application, `-smbios type=11`
 * values with these prefixes are removed, every other value is kept.
 */
export const OWNED_OEM_PREFIXES: readonly string[] = [
  GLINT_OEM_PREFIX,
  MACHINE_ID_CREDENTIAL,
  HOSTNAME_CREDENTIAL,
  "io.systemd.credential.binary:system.machine_id=",
  "io.systemd.credential.binary:system.hostname=",
];

/** virtio-blk serials hold at most 20 bytes (VIRTIO_BLK_ID_BYTES). */
export const DISK_SERIAL_MAX = 20;

/**
 * The virtio-blk serial of the system disk: `GL` + the first 18 hex digits of
 * disk_uuid (dashes removed, uppercase) — exactly 20 characters.
 */
export function diskSerial(diskUuid: string): string {
  return `GL${canonicalHex(diskUuid).slice(0, 18).toUpperCase()}`;
}

/** An SMBIOS serial derived from a UUID: `GLINT-` + its 32 hex digits, uppercase. */
export function uuidSerial(uuid: string): string {
  return `GLINT-${canonicalHex(uuid).toUpperCase()}`;
}

const same = (v: string): string => v;
const OEM_RAW = "/sys/firmware/dmi/entries/11-0/raw (`dmidecode -t 11`)";

function oem(field: IdentifierField, what: string): IdentityTarget {
  const prefix = `${GLINT_OEM_PREFIX}${field}=`;
  return {
    placement: { kind: "oem-string", prefix },
    derive: (v) => `${prefix}${v}`,
    option: `-smbios type=11,value=${prefix}<value>`,
    guest: `${OEM_RAW}; ${what}`,
  };
}

export const IDENTITY_MAPPING: readonly IdentityMappingRow[] = [
  {
    field: "vm_uuid",
    targets: [
      {
        placement: { kind: "uuid" },
        derive: same,
        option: "-uuid <value>",
        guest: "/sys/class/dmi/id/product_uuid (SMBIOS type 1 UUID, `dmidecode -s system-uuid`)",
      },
    ],
  },
  {
    field: "machine_id",
    targets: [
      {
        placement: { kind: "oem-string", prefix: MACHINE_ID_CREDENTIAL },
        derive: (v) => `${MACHINE_ID_CREDENTIAL}${v}`,
        option: `-smbios type=11,value=${MACHINE_ID_CREDENTIAL}<value>`,
        guest: `/etc/machine-id (systemd ≥ 254 imports the credential on first boot); ${OEM_RAW}`,
      },
    ],
  },
  {
    field: "mac_address",
    targets: [
      {
        placement: { kind: "nic-mac" },
        derive: same,
        option:
          "mac=<value> on the first NIC (-nic, -device virtio-net-pci; macaddr=<value> for -net nic)",
        guest: "/sys/class/net/<if>/address",
      },
    ],
  },
  {
    field: "disk_uuid",
    targets: [
      {
        placement: { kind: "disk-serial" },
        derive: diskSerial,
        option: `-device virtio-blk-pci,…,serial=GL<first 18 hex digits, uppercase> (${DISK_SERIAL_MAX} characters) on the first virtio-blk device`,
        guest: "/sys/block/vda/serial, /dev/disk/by-id/virtio-GL…",
      },
      oem("disk_uuid", "full value for the guest script"),
    ],
  },
  {
    field: "partition_uuid",
    targets: [oem("partition_uuid", "applied to the root partition by the guest script")],
  },
  {
    field: "filesystem_uuid",
    targets: [oem("filesystem_uuid", "applied to the root filesystem by the guest script")],
  },
  {
    field: "boot_uuid",
    targets: [oem("boot_uuid", "applied to the boot filesystem by the guest script")],
  },
  {
    field: "swap_uuid",
    targets: [oem("swap_uuid", "applied to the swap area by the guest script")],
  },
  {
    field: "dmi_uuid",
    targets: [
      {
        placement: { kind: "smbios-serial", type: 3 },
        derive: uuidSerial,
        option: "-smbios type=3,serial=GLINT-<32 hex digits, uppercase>",
        guest: "/sys/class/dmi/id/chassis_serial (`dmidecode -s chassis-serial-number`)",
      },
      oem("dmi_uuid", "full value"),
    ],
  },
  {
    field: "smbios_uuid",
    targets: [
      {
        placement: { kind: "smbios-serial", type: 1 },
        derive: uuidSerial,
        option: "-smbios type=1,serial=GLINT-<32 hex digits, uppercase>",
        guest: "/sys/class/dmi/id/product_serial (`dmidecode -s system-serial-number`)",
      },
      oem("smbios_uuid", "full value"),
    ],
  },
  {
    field: "cpu_serial",
    targets: [
      {
        placement: { kind: "smbios-serial", type: 4 },
        derive: same,
        option: "-smbios type=4,serial=<value>",
        guest:
          "SMBIOS type 4 serial: /sys/firmware/dmi/entries/4-0/raw (`dmidecode -t 4`, Serial Number)",
      },
    ],
  },
  {
    field: "motherboard_serial",
    targets: [
      {
        placement: { kind: "smbios-serial", type: 2 },
        derive: same,
        option: "-smbios type=2,serial=<value>",
        guest: "/sys/class/dmi/id/board_serial (`dmidecode -s baseboard-serial-number`)",
      },
    ],
  },
  {
    field: "bios_uuid",
    targets: [oem("bios_uuid", "full value")],
  },
  {
    field: "vm_generation_id",
    targets: [
      {
        placement: { kind: "vmgenid" },
        derive: same,
        option: "-device vmgenid,guid=<value>",
        guest:
          "ACPI device QEMUVGID (/sys/bus/acpi/devices/QEMUVGID:00); GUID bytes in /sys/firmware/qemu_fw_cfg/by_name/etc/vmgenid_guid/raw at offset 40",
      },
    ],
  },
];

/** The row of `field`. */
export function mappingFor(field: IdentifierField): IdentityMappingRow {
  const row = IDENTITY_MAPPING.find((r) => r.field === field);
  if (row === undefined) throw new Error(`no QEMU mapping for ${field}`); // unreachable: tested
  return row;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** Plain-text cells: keep `<if>` from reading as an HTML tag. */
function htmlSafe(text: string): string {
  return text.replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** The mapping as a Markdown table (one line per target), for the README. */
export function mappingTableMarkdown(): string {
  const lines = [
    "| Identifier | QEMU option | Where a Linux guest reads it |",
    "| --- | --- | --- |",
  ];
  for (const field of IDENTIFIER_FIELDS) {
    for (const [i, t] of mappingFor(field).targets.entries()) {
      lines.push(
        `| ${i === 0 ? `\`${field}\`` : ""} | \`${cell(t.option)}\` | ${htmlSafe(cell(t.guest))} |`,
      );
    }
  }
  lines.push(
    `| (hostname, optional) | \`-smbios type=11,value=${HOSTNAME_CREDENTIAL}<hostname>\` | transient hostname (systemd's \`system.hostname\` credential, see systemd.system-credentials(7)) |`,
  );
  return `${lines.join("\n")}\n`;
}
