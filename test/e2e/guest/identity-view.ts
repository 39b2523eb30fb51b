/**
 * What the tiny guest printed of its identity (its GLINT:key=value lines),
 * keyed like identifiers.json, and the check that it is exactly a VM's
 * identity: shared by the `glint run` and the libvirt tests.
 */
import { expect } from "vitest";
import type { SystemIdentifiers } from "../../../src/identity/model.js";
import { diskSerial } from "../../../src/qemu/mapping.js";
import { GLINT_UUID_FIELDS } from "../../support/identity.js";
import { type Markers, markerValue } from "./runner.js";

/** Everything the guest saw of its identity, keyed like identifiers.json. */
export function seen(markers: Markers): Record<string, string> {
  const oem = markers.oem ?? [];
  const oemValue = (prefix: string) => {
    const hit = oem.filter((s) => s.startsWith(prefix));
    expect(hit, `OEM string ${prefix}`).toHaveLength(1);
    return (hit[0] ?? "").slice(prefix.length);
  };
  const macs = Object.entries(markers).filter(([k]) => k.startsWith("mac:"));
  expect(macs, "exactly one NIC").toHaveLength(1);
  return {
    product_uuid: markerValue(markers, "product_uuid"),
    product_serial: markerValue(markers, "product_serial"),
    chassis_serial: markerValue(markers, "chassis_serial"),
    board_serial: markerValue(markers, "board_serial"),
    processor_serial: markerValue(markers, "processor_serial"),
    mac: macs[0]?.[1]?.[0] ?? "",
    vda_serial: markerValue(markers, "vda_serial"),
    vmgenid: markerValue(markers, "vmgenid"),
    vmgenid_guid: markerValue(markers, "vmgenid_guid"),
    machine_id: oemValue("io.systemd.credential:system.machine_id="),
    hostname: oemValue("io.systemd.credential:system.hostname="),
    disk_uuid: oemValue("glint.disk_uuid="),
    partition_uuid: oemValue("glint.partition_uuid="),
    filesystem_uuid: oemValue("glint.filesystem_uuid="),
    boot_uuid: oemValue("glint.boot_uuid="),
    swap_uuid: oemValue("glint.swap_uuid="),
    dmi_uuid: oemValue("glint.dmi_uuid="),
    smbios_uuid: oemValue("glint.smbios_uuid="),
    bios_uuid: oemValue("glint.bios_uuid="),
    tpm: markerValue(markers, "tpm"),
  };
}

export const hexSerial = (uuid: string) => `GLINT-${uuid.replaceAll("-", "").toUpperCase()}`;

/** Assert that the guest saw exactly the identity in identifiers.json. */
export function expectGuestSees(
  s: Record<string, string>,
  ids: SystemIdentifiers,
  vm: string,
): void {
  expect(s.product_uuid).toBe(ids.vm_uuid);
  expect(s.board_serial).toBe(ids.motherboard_serial);
  expect(s.processor_serial).toBe(ids.cpu_serial);
  expect(s.mac).toBe(ids.mac_address);
  expect(s.vda_serial).toBe(diskSerial(ids.disk_uuid));
  expect(s.vmgenid).toBe("yes");
  expect(s.vmgenid_guid).toBe(ids.vm_generation_id);
  expect(s.machine_id).toBe(ids.machine_id);
  expect(s.hostname).toBe(vm);
  expect(s.product_serial).toBe(hexSerial(ids.smbios_uuid));
  expect(s.chassis_serial).toBe(hexSerial(ids.dmi_uuid));
  for (const f of GLINT_UUID_FIELDS) {
    expect(s[f], f).toBe(ids[f]);
  }
}
