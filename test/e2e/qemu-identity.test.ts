/**
 * Issue "QEMU": the identity reaches a real guest. Every assertion reads a
 * value that the booted Linux guest printed from /sys, never what Glint says
 * it passed.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readEkFingerprint } from "../../src/firmware/index.js";
import { IDENTIFIER_FIELDS } from "../../src/identity/model.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { expectGuestSees, seen } from "./guest/identity-view.js";
import { bootWithGlint, markerValue, startGlintRun } from "./guest/runner.js";

let guest: TinyGuest;
let home: string;
let base: string;

beforeAll(async () => {
  guest = await tinyGuest();
  home = await tempDir("glint-e2e-qemu-");
  base = path.join(home, "shared-base.qcow2");
  await runCliOk(["--version"]);
  const { execFile } = await import("node:child_process");
  await new Promise<void>((resolve, reject) =>
    execFile("qemu-img", ["create", "-q", "-f", "qcow2", base, "32M"], (e) =>
      e ? reject(e) : resolve(),
    ),
  );
}, 300_000);

describe("glint run: the guest reads the identity Glint set", () => {
  let before: { a: Record<string, string>; b: Record<string, string> };

  it("two VMs from the same base image see their own values, and different ones", async () => {
    await runCliOk(["create", "clone-a", "--home", home, "--base", base, "--overlay", "--tpm"]);
    await runCliOk(["create", "clone-b", "--home", home, "--base", base, "--overlay"]);
    const bootA = await bootWithGlint(home, "clone-a", guest);
    const bootB = await bootWithGlint(home, "clone-b", guest);
    const a = seen(bootA.markers);
    const b = seen(bootB.markers);
    expectGuestSees(a, await readIds(home, "clone-a"), "clone-a");
    expectGuestSees(b, await readIds(home, "clone-b"), "clone-b");
    for (const key of Object.keys(a)) {
      if (key === "vmgenid" || key === "tpm") continue;
      expect(a[key], `${key} differs between clones`).not.toBe(b[key]);
    }
    expect(a.tpm).toBe("yes");
    expect(b.tpm).toBe("no");
    before = { a, b };
  }, 400_000);

  it("after glint nuke, the guest sees all new values and the TPM has a new EK", async () => {
    const idsBefore = await readIds(home, "clone-a");
    const ekBefore = await readEkFingerprint(path.join(home, "clone-a", "tpm"));
    await runCliOk(["nuke", "clone-a", "--yes", "--home", home]);
    const idsAfter = await readIds(home, "clone-a");
    for (const f of IDENTIFIER_FIELDS) expect(idsAfter[f], f).not.toBe(idsBefore[f]);
    const after = seen((await bootWithGlint(home, "clone-a", guest)).markers);
    expectGuestSees(after, idsAfter, "clone-a");
    for (const key of Object.keys(after)) {
      if (["vmgenid", "tpm", "hostname"].includes(key)) continue;
      expect(after[key], `${key} changed after nuke`).not.toBe(before.a[key]);
    }
    expect(after.tpm).toBe("yes");
    const ekAfter = await readEkFingerprint(path.join(home, "clone-a", "tpm"));
    expect(ekAfter).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(ekAfter).not.toBe(ekBefore);
  }, 400_000);

  it("glint nuke refuses while glint run holds the VM, and works once QEMU has exited", async () => {
    // A paused QEMU (-S) runs until it is killed.
    // A paused QEMU (-S) runs until it is stopped.
    const running = startGlintRun(home, "clone-b", ["-S"]);
    try {
      const lock = path.join(home, ".glint", "vms", "clone-b.lock");
      for (let i = 0; i < 200; i++) {
        if (await fs.stat(lock).catch(() => undefined)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 1000));
      const idsBefore = await readIds(home, "clone-b");
      const refused = await runCli(["nuke", "clone-b", "--yes", "--home", home]);
      expect(refused.code, running.stderr()).toBe(1);
      expect(refused.stderr).toMatch(/busy.*glint run/);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1);
      expect(await readIds(home, "clone-b")).toEqual(idsBefore);
    } finally {
      await running.stop();
    }
    const ok = await runCli(["nuke", "clone-b", "--yes", "--home", home]);
    expect(ok.code, ok.stderr).toBe(0);
  }, 120_000);
});

describe("UEFI", () => {
  it("an EFI variable written by the guest survives a reboot and is gone after glint reset uefi", async () => {
    await runCliOk(["create", "efi", "--home", home, "--firmware", "uefi", "--disk-size", "16M"]);
    const write = await bootWithGlint(
      home,
      "efi",
      guest,
      "glint.efitest=write glint.efivalue=persisted",
    );
    expect(markerValue(write.markers, "efi")).toBe("yes");
    expect(markerValue(write.markers, "efivar_written")).toBe("persisted");
    const read = await bootWithGlint(home, "efi", guest, "glint.efitest=read");
    expect(markerValue(read.markers, "efivar")).toBe("persisted");
    await runCliOk(["reset", "uefi", "efi", "--yes", "--home", home]);
    const history = await fs.readdir(path.join(home, "efi", "history"));
    expect(history.some((n) => n.includes("reset-uefi_uefi-instance"))).toBe(true);
    const reset = await bootWithGlint(home, "efi", guest, "glint.efitest=read");
    expect(markerValue(reset.markers, "efivar")).toBe("none");
    expectGuestSees(seen(reset.markers), await readIds(home, "efi"), "efi");
  }, 600_000);

  it("Secure Boot firmware boots with the enrolled-keys NVRAM and SMM", async () => {
    await runCliOk(["create", "sb", "--home", home, "--firmware", "uefi-secure"]);
    const args = JSON.parse(
      await runCliOk(["qemu-args", "sb", "--json", "--home", home]),
    ) as string[];
    expect(args).toContain("driver=cfi.pflash01,property=secure,value=on");
    expect(args.some((a) => /^q35,.*smm=on/.test(a))).toBe(true);
    // The Secure Boot firmware refuses unsigned kernels, so a -kernel boot is not
    // possible; prove instead that QEMU accepts the whole command and runs it.
    const running = startGlintRun(home, "sb");
    const code = await Promise.race([
      running.exited,
      new Promise<"running">((resolve) => setTimeout(() => resolve("running"), 4000)),
    ]);
    await running.stop();
    expect(code, running.stderr()).toBe("running");
  }, 60_000);
});
