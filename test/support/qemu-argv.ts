/**
 * Reading QEMU argvs back in tests: the -smbios options, OEM strings and
 * where each identity value landed.
 */
import { expect } from "vitest";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/index.js";
import { diskSerial, uuidSerial } from "../../src/qemu/mapping.js";
import { parseOptionList } from "../../src/qemu/options.js";
import { GLINT_UUID_FIELDS } from "./identity.js";
import { optionArgs } from "./qemu.js";

/** Every -smbios argument, parsed. */
export function smbios(argv: readonly string[]) {
  return optionArgs(argv, "-smbios").map(parseOptionList);
}

export function oemStrings(argv: readonly string[]): string[] {
  return smbios(argv)
    .filter((items) => items.some((i) => i.key === "type" && i.value === "11"))
    .flatMap((items) => items.filter((i) => i.key === "value").map((i) => i.value));
}

export function smbiosField(argv: readonly string[], type: number, key: string): string[] {
  return smbios(argv)
    .filter((items) => items.some((i) => i.key === "type" && i.value === String(type)))
    .flatMap((items) => items.filter((i) => i.key === key).map((i) => i.value));
}

/** Occurrences of `needle` as a whole option item value anywhere in argv. */
export function countValue(argv: readonly string[], needle: string): number {
  let n = 0;
  for (const a of argv) {
    if (a === needle) n++;
    else if (!a.startsWith("{")) {
      for (const item of parseOptionList(a))
        if (item.value.endsWith(needle) && item.value !== "") {
          if (item.value === needle || item.value.endsWith(`=${needle}`)) n++;
        }
    } else if (a.includes(`"${needle}"`)) n++;
  }
  return n;
}

/** Checks that `argv` carries exactly `ids` (each placed value once, in its option). */
export function expectIdentity(
  argv: readonly string[],
  ids: SystemIdentifiers,
  hasNic: boolean,
  hasDisk: boolean,
) {
  expect(optionArgs(argv, "-uuid")).toEqual([ids.vm_uuid]);
  expect(smbiosField(argv, 1, "uuid")).toEqual([]);
  expect(smbiosField(argv, 1, "serial")).toEqual([uuidSerial(ids.smbios_uuid)]);
  expect(smbiosField(argv, 2, "serial")).toEqual([ids.motherboard_serial]);
  expect(smbiosField(argv, 3, "serial")).toEqual([uuidSerial(ids.dmi_uuid)]);
  expect(smbiosField(argv, 4, "serial")).toEqual([ids.cpu_serial]);
  const oem = oemStrings(argv);
  expect(oem.filter((v) => v.startsWith("io.systemd.credential:system.machine_id="))).toEqual([
    `io.systemd.credential:system.machine_id=${ids.machine_id}`,
  ]);
  for (const f of GLINT_UUID_FIELDS) {
    expect(
      oem.filter((v) => v.startsWith(`glint.${f}=`)),
      f,
    ).toEqual([`glint.${f}=${ids[f]}`]);
  }
  const vmgenid = optionArgs(argv, "-device").filter((d) => /^vmgenid(,|$)/.test(d));
  expect(vmgenid).toHaveLength(1);
  expect(
    parseOptionList(vmgenid[0] as string)
      .filter((i) => i.key === "guid")
      .map((i) => i.value),
  ).toEqual([ids.vm_generation_id]);
  const macs = optionArgs(argv, "-nic")
    .concat(optionArgs(argv, "-device"))
    .flatMap((a) =>
      parseOptionList(a)
        .filter((i) => i.key === "mac")
        .map((i) => i.value),
    );
  expect(macs.filter((m) => m === ids.mac_address)).toEqual(hasNic ? [ids.mac_address] : []);
  const serials = optionArgs(argv, "-device")
    .filter((d) => d.startsWith("virtio-blk"))
    .flatMap((a) =>
      parseOptionList(a)
        .filter((i) => i.key === "serial")
        .map((i) => i.value),
    );
  expect(serials.filter((x) => x === diskSerial(ids.disk_uuid))).toEqual(
    hasDisk ? [diskSerial(ids.disk_uuid)] : [],
  );
  // Every identifier value appears exactly once as a whole option value.
  for (const f of IDENTIFIER_FIELDS) {
    expect(countValue(argv, ids[f]), f).toBe(f === "mac_address" && !hasNic ? 0 : 1);
  }
}
