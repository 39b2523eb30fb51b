/**
 * End to end: boot the tiny Linux test guest (test/e2e/guest) with the argv
 * from buildVmArgv and check that the guest reads every identifier where
 * IDENTITY_MAPPING says it does. TCG, because nested KVM on CI hosts can be
 * slower than TCG for this tiny guest.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBlankDisk } from "../../src/qemu/img.js";
import {
  diskSerial,
  HOSTNAME_CREDENTIAL,
  IDENTITY_MAPPING,
  uuidSerial,
} from "../../src/qemu/mapping.js";
import { buildVmArgv } from "../../src/qemu/vm-argv.js";
import { vmPaths } from "../../src/vm/layout.js";
import { createCidataIso, tinyGuest } from "../e2e/guest/fixture.js";
import { bootGuest, guestKernelArgs, markerValue, type RunResult } from "../e2e/guest/runner.js";
import { identityFromSeed } from "../support/identity.js";
import { config } from "../support/qemu.js";
import { startTestSwtpm, type TestSwtpm } from "../support/swtpm.js";
import { tempDir } from "../support/tmp.js";

const ids = identityFromSeed("guest-boot");
let root: string;
let swtpm: TestSwtpm | undefined;
let result: RunResult;

beforeAll(async () => {
  root = await tempDir("glint-qemu-guest-");
  const guest = await tinyGuest();
  const paths = vmPaths(path.join(root, "home,1"), "guest-one");
  await mkdir(paths.shared, { recursive: true });
  await writeFile(paths.script, "#!/bin/sh\necho hello\n");
  await createBlankDisk(paths.base, "32M");
  await createCidataIso(paths.seedIso, { "meta-data": "instance-id: x\n" });
  swtpm = await startTestSwtpm(path.join(root, "tpm"));
  const argv = buildVmArgv({
    name: "guest-one",
    ids,
    config: config({ tpm: true, memory_mb: 512 }),
    paths,
    tpmSocket: swtpm.socket,
    seedIso: paths.seedIso,
    shareDir: paths.shared,
    extra: [
      ...guestKernelArgs(guest.kernel, guest.initrd, "glint.cidata=wait glint.waitsec=20"),
      "-accel",
      "tcg",
    ],
  });
  result = await bootGuest({ qemuArgs: argv, timeoutMs: 180_000 });
}, 300_000);

afterAll(async () => {
  await swtpm?.stop();
});

describe("a Linux guest booted with buildVmArgv", () => {
  const m = (key: string): string => markerValue(result.markers, key);

  it("reads vm_uuid, the SMBIOS serials and the disk serial from sysfs", () => {
    expect(m("product_uuid")).toBe(ids.vm_uuid);
    expect(m("product_serial")).toBe(uuidSerial(ids.smbios_uuid));
    expect(m("board_serial")).toBe(ids.motherboard_serial);
    expect(m("chassis_serial")).toBe(uuidSerial(ids.dmi_uuid));
    expect(m("processor_serial")).toBe(ids.cpu_serial);
    expect(m("vda_serial")).toBe(diskSerial(ids.disk_uuid));
  });

  it("sees the MAC on its only NIC", () => {
    const macs = Object.entries(result.markers).filter(([k]) => k.startsWith("mac:"));
    expect(macs.map(([, v]) => v)).toEqual([[ids.mac_address]]);
  });

  it("has the vmgenid device with the vm_generation_id", () => {
    expect(m("vmgenid")).toBe("yes");
    expect(m("vmgenid_guid")).toBe(ids.vm_generation_id);
  });

  it("reads every OEM string of the mapping (and the hostname credential)", () => {
    const oem = result.markers.oem ?? [];
    const expected = IDENTITY_MAPPING.flatMap((row) =>
      row.targets
        .filter((t) => t.placement.kind === "oem-string")
        .map((t) => t.derive(ids[row.field])),
    );
    expect(expected.length).toBeGreaterThanOrEqual(9);
    for (const v of expected) expect(oem).toContain(v);
    expect(oem).toContain(`${HOSTNAME_CREDENTIAL}guest-one`);
    expect(oem).toHaveLength(expected.length + 1);
  });

  it("keeps the system disk as vda with the seed ISO, 9p share and TPM attached", () => {
    expect(m("cidata")).toBe("/dev/vdb");
    expect(m("9p")).toBe("yes");
    expect(m("tpm")).toBe("yes");
    expect(result.markers["blk_serial:vda"]).toEqual([diskSerial(ids.disk_uuid)]);
    expect(result.markers["blk_serial:vdb"]).toEqual([""]);
  });
});
