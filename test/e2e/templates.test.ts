/**
 * Identity templates in a real guest: a VM created from each predefined
 * template boots the tiny guest through `glint run`, and the guest reads the
 * template's SMBIOS strings (/sys/class/dmi/id), its extra OEM strings and
 * serials drawn in its serial formats; the OpenStack profile's guest sees
 * Nova's SMBIOS strings and its config-2 drive.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { readIds, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { bootWithGlint, type Markers, markerValue } from "./guest/runner.js";

let guest: TinyGuest;
let home: string;

beforeAll(async () => {
  guest = await tinyGuest();
  home = await tempDir("glint-e2e-templates-");
}, 300_000);

const template = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../assets/templates/${name}.json`, import.meta.url), "utf8"));

async function bootFrom(vm: string, name: string, extra: string[] = []): Promise<Markers> {
  await runCliOk(["create", vm, "--template", name, "--home", home, ...extra]);
  return (await bootWithGlint(home, vm, guest)).markers;
}

/** The guest's SMBIOS strings are the template's. */
function expectSmbios(markers: Markers, smbios: Record<string, string>): void {
  const sysfs: Record<string, string> = {
    system_manufacturer: "sys_vendor",
    system_product: "product_name",
    system_version: "product_version",
    system_family: "product_family",
    board_manufacturer: "board_vendor",
    chassis_manufacturer: "chassis_vendor",
    chassis_asset_tag: "chassis_asset_tag",
  };
  for (const [field, value] of Object.entries(smbios)) {
    expect(markerValue(markers, sysfs[field] ?? field), field).toBe(value);
  }
}

/** Serials in the guest are the identity's, drawn in the template's formats. */
async function expectSerials(markers: Markers, vm: string, cpu: RegExp, board: RegExp) {
  const ids = await readIds(home, vm);
  expect(ids.cpu_serial).toMatch(cpu);
  expect(ids.motherboard_serial).toMatch(board);
  expect(markerValue(markers, "processor_serial")).toBe(ids.cpu_serial);
  expect(markerValue(markers, "board_serial")).toBe(ids.motherboard_serial);
  return ids;
}

describe("a guest booted from each predefined template", () => {
  it("default: QEMU's own SMBIOS strings, Glint's serials, a NoCloud seed", async () => {
    const markers = await bootFrom("tpl-default", "default");
    expect(markerValue(markers, "sys_vendor")).toBe("QEMU");
    const ids = await expectSerials(
      markers,
      "tpl-default",
      /^CPU[0-9A-Z]{16}$/,
      /^MB[0-9A-Z]{16}$/,
    );
    expect(markerValue(markers, "product_serial")).toBe(
      `GLINT-${ids.smbios_uuid.replaceAll("-", "").toUpperCase()}`,
    );
    expect(markerValue(markers, "cidata")).not.toBe("no");
    expect(markerValue(markers, "config2")).toBe("no");
  }, 300_000);

  it("uefi-secure-tpm: its strings (a comma included), serial formats and TPM", async () => {
    // The tiny guest's kernel is not signed for the enrolled Microsoft keys:
    // the boot overrides the firmware with plain UEFI (an option wins over the template).
    const t = template("uefi-secure-tpm");
    const markers = await bootFrom("tpl-secure", "uefi-secure-tpm", ["--firmware", "uefi"]);
    expectSmbios(markers, t.smbios);
    expect(t.smbios.system_product).toContain(",");
    await expectSerials(markers, "tpl-secure", /^CPUSB[0-9A-Z]{18}$/, /^MBSB[0-9A-Z]{18}$/);
    expect(markerValue(markers, "tpm")).toBe("yes");
    expect(markerValue(markers, "efi")).toBe("yes");
  }, 300_000);

  it("workstation: a desktop's SMBIOS and OEM strings, service-tag serials, hostname ws-{n}", async () => {
    const t = template("workstation");
    const markers = await bootFrom("desk-7", "workstation");
    expectSmbios(markers, t.smbios);
    await expectSerials(markers, "desk-7", /^CPU[0-9A-Z]{16}$/, /^MBCN7016[0-9A-Z]{14}$/);
    const oem = markers.oem ?? [];
    for (const s of t.oem_strings) expect(oem).toContain(s);
    expect(oem).toContain("io.systemd.credential:system.hostname=ws-7");
    expect(markerValue(markers, "tpm")).toBe("yes");
  }, 300_000);

  it("openstack: Nova's SMBIOS, the VM UUID as serial, and a config-2 drive instead of cidata", async () => {
    const markers = await bootFrom("tpl-os-1", "openstack");
    const ids = await readIds(home, "tpl-os-1");
    expectSmbios(markers, {
      system_manufacturer: "OpenStack Foundation",
      system_product: "OpenStack Nova",
      chassis_asset_tag: "OpenStack Nova",
    });
    expect(markerValue(markers, "product_serial")).toBe(ids.vm_uuid);
    expect(markerValue(markers, "product_uuid")).toBe(ids.vm_uuid);
    expect(markerValue(markers, "cidata")).toBe("no");
    expect(markerValue(markers, "config2")).not.toBe("no");
    const meta = JSON.parse(markerValue(markers, "config2:latest/meta_data.json"));
    expect(meta.uuid).toBe(ids.vm_uuid);
    expect(meta.hostname).toBe("tpl-os-1");
    const net = JSON.parse(markerValue(markers, "config2:latest/network_data.json"));
    expect(net.links[0].ethernet_mac_address).toBe(ids.mac_address);
    expect(markerValue(markers, `mac:eth0`)).toBe(ids.mac_address);
    expect(markers.config2_version).toEqual(["2012-08-10", "2015-10-15", "latest"]);
  }, 300_000);

  it("openstack: after nuke the guest sees the rebuilt drive's new instance-id", async () => {
    const before = await readIds(home, "tpl-os-1");
    await runCliOk(["nuke", "tpl-os-1", "--yes", "--home", home]);
    const next = await readIds(home, "tpl-os-1");
    const again = (await bootWithGlint(home, "tpl-os-1", guest)).markers;
    const meta = JSON.parse(markerValue(again, "config2:latest/meta_data.json"));
    expect(meta.uuid).toBe(next.vm_uuid);
    expect(meta.uuid).not.toBe(before.vm_uuid);
    expect(markerValue(again, "product_serial")).toBe(next.vm_uuid);
  }, 300_000);
});
