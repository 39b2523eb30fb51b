/**
 * Backup and restore, shown by a real guest: a VM with UEFI and a TPM writes
 * an EFI variable, is backed up with its disk, deleted and restored; booted
 * again, it sees the same identity and the variable it wrote, and its TPM
 * has the same endorsement key. A clone restored from the same archive boots
 * with an identity of its own and a new EK.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readEkFingerprint } from "../../src/firmware/index.js";
import { IDENTIFIER_FIELDS } from "../../src/identity/model.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { connectQmp } from "../support/qemu.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { bootWithGlint, type Markers, markerValue, startGlintRun } from "./guest/runner.js";

let guest: TinyGuest;
let home: string;

beforeAll(async () => {
  guest = await tinyGuest();
  home = await tempDir("glint-e2e-backup-");
}, 300_000);

/** What the guest read of its machine: SMBIOS, MAC, vmgenid, TPM, and the OEM identity strings. */
function seen(markers: Markers): Record<string, unknown> {
  return {
    product_uuid: markerValue(markers, "product_uuid"),
    product_serial: markerValue(markers, "product_serial"),
    board_serial: markerValue(markers, "board_serial"),
    vmgenid_guid: markerValue(markers, "vmgenid_guid"),
    tpm: markerValue(markers, "tpm"),
    efi: markerValue(markers, "efi"),
    macs: Object.entries(markers).filter(([k]) => k.startsWith("mac:")),
    oem: [...(markers.oem ?? [])].sort(),
  };
}

describe("glint backup → rm → glint restore, booted before and after", () => {
  it("keeps the identity, the UEFI variables and the TPM EK; a clone gets its own", async () => {
    const g = (...args: string[]) => runCliOk([...args, "--home", home]);
    await g("create", "keep", "--firmware", "uefi", "--tpm", "--disk-size", "16M");
    const before = await bootWithGlint(
      home,
      "keep",
      guest,
      "glint.efitest=write glint.efivalue=kept",
    );
    expect(markerValue(before.markers, "efivar_written")).toBe("kept");
    expect(markerValue(before.markers, "tpm")).toBe("yes");
    const ids = await readIds(home, "keep");
    const ek = await readEkFingerprint(path.join(home, "keep", "tpm"));
    const nvram = await fs.readFile(path.join(home, "keep", "uefi-instance.fd"));

    const archive = path.join(home, "keep.glint.tar.gz");
    await g("backup", "keep", "-o", archive, "--with-disk");
    await g("rm", "keep", "--yes");
    await g("restore", archive);

    expect(await readIds(home, "keep")).toEqual(ids);
    expect(await readEkFingerprint(path.join(home, "keep", "tpm"))).toBe(ek);
    expect(await fs.readFile(path.join(home, "keep", "uefi-instance.fd"))).toEqual(nvram);
    const after = await bootWithGlint(home, "keep", guest, "glint.efitest=read");
    expect(markerValue(after.markers, "efivar")).toBe("kept");
    expect(seen(after.markers)).toEqual({ ...seen(before.markers) });
    expect(markerValue(after.markers, "product_uuid")).toBe(ids.vm_uuid);

    await g("restore", archive, "--as", "twin", "--as-clone");
    const twin = await readIds(home, "twin");
    for (const f of IDENTIFIER_FIELDS) expect(twin[f], f).not.toBe(ids[f]);
    expect(await readEkFingerprint(path.join(home, "twin", "tpm"))).not.toBe(ek);
    const clone = await bootWithGlint(home, "twin", guest, "glint.efitest=read");
    expect(markerValue(clone.markers, "product_uuid")).toBe(twin.vm_uuid);
    expect(markerValue(clone.markers, "tpm")).toBe("yes");
    // The clone's UEFI variables are fresh (nuke policy): the original's variable is not there.
    expect(markerValue(clone.markers, "efivar")).toBe("none");
  }, 900_000);
});

describe("glint backup of a running VM", () => {
  it("is refused without --live; with --live the VM is paused through QMP, archived and resumed", async () => {
    const g = (...args: string[]) => runCliOk([...args, "--home", home]);
    // UEFI with a blank disk: the firmware waits in its boot manager, so the VM keeps running.
    await g("create", "busy", "--firmware", "uefi", "--tpm", "--disk-size", "16M");
    const qmpSocket = path.join(home, "busy", "qmp.sock");
    const running = startGlintRun(home, "busy", ["-qmp", `unix:${qmpSocket},server=on,wait=off`]);
    try {
      for (let i = 0; i < 300 && !(await fs.stat(qmpSocket).catch(() => undefined)); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const archive = path.join(home, "busy.glint.tar.gz");
      const refused = await runCli(["backup", "busy", "-o", archive, "--home", home]);
      expect(refused.code, running.stderr()).toBe(1);
      expect(refused.stderr).toMatch(/is running; stop it, or give --live/);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1);
      expect(await fs.stat(archive).catch(() => undefined)).toBeUndefined();

      const out = JSON.parse(
        await g("backup", "busy", "-o", archive, "--live", "--with-disk", "--json"),
      );
      expect(out).toMatchObject({ vm: "busy", live: true, with_disk: true });
      const qmp = await connectQmp(qmpSocket);
      try {
        expect(await qmp.execute("query-status")).toMatchObject({ status: "running" });
      } finally {
        qmp.close();
      }
    } finally {
      await running.stop();
    }
    // The live archive restores (as a clone beside the original).
    await g("restore", path.join(home, "busy.glint.tar.gz"), "--as", "busy2", "--as-clone");
    expect((await readIds(home, "busy2")).vm_uuid).not.toBe((await readIds(home, "busy")).vm_uuid);
  }, 300_000);
});
