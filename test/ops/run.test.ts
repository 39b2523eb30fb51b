/**
 * VM lifecycle details: the OVMF code chosen at create time is pinned in
 * config.json, and the accelerator choice.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { UuidManager } from "../../src/manager.js";
import { acceleratorArgs } from "../../src/ops/run.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-lifecycle-");
});

describe("firmware pinning", () => {
  it("records the OVMF code at create time and keeps using it", async () => {
    const m = new UuidManager({ home });
    await m.createVm("efi", { firmware: "uefi" });
    const configFile = path.join(home, "efi", "config.json");
    const config = JSON.parse(await fs.readFile(configFile, "utf8"));
    expect(config.firmware_code).toMatch(/OVMF/);
    expect(await m.qemuArgs("efi")).toContain(
      `if=pflash,format=raw,unit=0,readonly=on,file=${config.firmware_code}`,
    );
    // A pinned copy elsewhere (as after a host upgrade kept the old file) wins.
    const pinned = path.join(home, "OVMF_CODE_pinned.fd");
    await fs.copyFile(config.firmware_code, pinned);
    await fs.writeFile(configFile, JSON.stringify({ ...config, firmware_code: pinned }));
    expect(await m.qemuArgs("efi")).toContain(
      `if=pflash,format=raw,unit=0,readonly=on,file=${pinned}`,
    );
  });
});

describe("accelerator", () => {
  it("uses KVM only when the device can be opened, and never overrides the caller's choice", async () => {
    expect(acceleratorArgs([], path.join(home, "no-such-kvm"))).toEqual(["-accel", "tcg"]);
    const fakeKvm = path.join(home, "kvm");
    await fs.writeFile(fakeKvm, "");
    expect(acceleratorArgs([], fakeKvm)).toEqual(["-accel", "kvm"]);
    expect(acceleratorArgs(["-accel", "tcg"], fakeKvm)).toEqual([]);
    expect(acceleratorArgs(["-enable-kvm"], fakeKvm)).toEqual([]);
    expect(acceleratorArgs(["-machine", "q35,accel=tcg"], fakeKvm)).toEqual([]);
  });
});
