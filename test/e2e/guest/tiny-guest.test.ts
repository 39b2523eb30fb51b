/**
 * Proves the tiny test guest: builds the initramfs, boots it under QEMU/TCG
 * (SeaBIOS and OVMF, with and without swtpm) and checks every GLINT marker
 * against what was passed on the QEMU command line.
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startTestSwtpm } from "../../support/swtpm.js";
import { tempDir } from "../../support/tmp.js";
import { DEFAULT_CACHE_DIR as CACHE_DIR } from "./cache.js";
import { createBlankDisk, createCidataIso, findOvmf, ovmfArgs } from "./fixture.js";
import { buildInitramfs, writeNewcCpio } from "./initramfs.js";
import { extractVmlinux, findKernel, type KernelInfo, planModules } from "./kernel.js";
import {
  bootGuest,
  guestKernelArgs,
  markerValue,
  parseMarkers,
  type RunResult,
  runAndCollect,
} from "./runner.js";

const execFileAsync = promisify(execFile);

const BOOT_TIMEOUT_MS = 240_000;
const TEST_TIMEOUT_MS = 300_000;
const BASE_ARGS = ["-machine", "q35", "-accel", "tcg", "-m", "256"];

let kernel: KernelInfo;
let vmlinux: string;
let initrd: string;
let work: string;
const timings: { boot: string; ms: number }[] = [];

async function timedBoot(label: string, qemuArgs: string[]): Promise<RunResult> {
  const result = await bootGuest({ qemuArgs, timeoutMs: BOOT_TIMEOUT_MS });
  timings.push({ boot: label, ms: result.durationMs });
  return result;
}

/** Every marker a boot must print, whatever the machine. */
function expectCleanBoot(result: RunResult): void {
  expect(result.exitCode).toBe(0);
  expect(result.markers.modfail, result.output).toBeUndefined();
  expect(result.markers.done).toEqual([""]);
  expect(markerValue(result.markers, "kernel")).toBe(kernel.version);
  expect(markerValue(result.markers, "acpi")).toBe("yes");
}

beforeAll(async () => {
  kernel = findKernel();
  initrd = await buildInitramfs({ cacheDir: CACHE_DIR, kernel });
  vmlinux = await extractVmlinux(kernel, CACHE_DIR);
  work = await tempDir("glint-tiny-guest-");
}, 120_000);

afterAll(async () => {
  if (timings.length > 0) console.table(timings);
});

describe("building blocks", () => {
  test("findKernel picks a kernel with modules", () => {
    expect(kernel.kernel).toBe(`/boot/vmlinuz-${kernel.version}`);
    expect(() => findKernel("/nonexistent-boot")).toThrow(/apt-get install linux-image-amd64/);
  });

  test("module plan resolves dependencies before dependents", () => {
    const plan = planModules(kernel.version);
    expect(plan.missing).toEqual([]);
    const index = (suffix: string): number => plan.load.findIndex((p) => p.endsWith(suffix));
    for (const needed of ["/virtio_net.ko", "/virtio_blk.ko", "/9pnet_virtio.ko", "/isofs.ko"]) {
      expect(index(needed), needed).toBeGreaterThanOrEqual(0);
    }
    expect(index("/virtio.ko")).toBeLessThan(index("/virtio_pci.ko"));
    expect(index("/jbd2.ko")).toBeLessThan(index("/ext4.ko"));
    expect(index("/fat.ko")).toBeLessThan(index("/vfat.ko"));
    expect(new Set(plan.load).size).toBe(plan.load.length);
  });

  test("newc writer output is readable by cpio(1)", async () => {
    const archive = join(work, "t.cpio");
    await writeFile(
      archive,
      writeNewcCpio([
        { name: "a", mode: 0o040755 },
        { name: "a/b.txt", mode: 0o100644, data: Buffer.from("hello\n") },
        { name: "a/link", mode: 0o120777, data: Buffer.from("b.txt") },
      ]),
    );
    const { stdout } = await execFileAsync("cpio", ["-it", "-F", archive]);
    expect(stdout.trim().split("\n")).toEqual(["a", "a/b.txt", "a/link"]);
    const out = join(work, "x");
    await mkdir(out);
    await execFileAsync("cpio", ["-id", "--quiet", "-F", archive], { cwd: out });
    expect(await readFile(join(out, "a/link"), "utf8")).toBe("hello\n");
  });

  test("initramfs is cached and contains init, busybox and modules", async () => {
    expect(await buildInitramfs({ cacheDir: CACHE_DIR, kernel })).toBe(initrd);
    const raw = join(work, "initramfs.cpio");
    await writeFile(raw, gunzipSync(await readFile(initrd)));
    const list = await execFileAsync("cpio", ["-it", "--quiet", "-F", raw], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const names = new Set(list.stdout.trim().split("\n"));
    for (const n of [
      "init",
      "bin/busybox",
      "bin/sh",
      "bin/insmod",
      "dev/console",
      "etc/glint/modules",
    ]) {
      expect(names.has(n), n).toBe(true);
    }
    expect([...names].some((n) => n.endsWith("/virtio_net.ko"))).toBe(true);
  });

  test("parseMarkers tolerates escapes, CRs and '=' in values", () => {
    const markers = parseMarkers(
      "\x1b[2J\x1b[01;01HGLINT:kernel=6.1\r\nnoise\nGLINT:oem=a=b\r\nGLINT:oem=c\nGLINT:done\r\n",
    );
    expect(markers).toEqual({ kernel: ["6.1"], oem: ["a=b", "c"], done: [""] });
  });

  test("runAndCollect kills on timeout and reports the output", async () => {
    const started = Date.now();
    await expect(
      runAndCollect(
        [process.execPath, "-e", "console.log('GLINT:early=1'); setTimeout(() => {}, 30000);"],
        undefined,
        500,
      ),
    ).rejects.toThrow(/timed out after 500 ms[\s\S]*GLINT:early=1/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test("runAndCollect kills a process that hangs after GLINT:done", async () => {
    const result = await runAndCollect(
      [process.execPath, "-e", "console.log('GLINT:done'); setTimeout(() => {}, 30000);"],
      undefined,
      20_000,
      { doneGraceMs: 300 },
    );
    expect(result.killedAfterDone).toBe(true);
    expect(result.markers.done).toEqual([""]);
    expect(result.durationMs).toBeLessThan(10_000);
  });
});

describe("boots under TCG", () => {
  test.each([
    ["bzImage", () => kernel.kernel],
    ["vmlinux (PVH)", () => vmlinux],
  ])(
    "SeaBIOS + %s: identity markers match the QEMU command line",
    async (label, kernelPath) => {
      const uuid = randomUUID();
      const genid = randomUUID();
      const machineId = randomBytes(16).toString("hex");
      const disk = await createBlankDisk(join(work, `d0-${randomBytes(4).toString("hex")}.qcow2`));
      const result = await timedBoot(`SeaBIOS ${label}`, [
        ...BASE_ARGS,
        ...guestKernelArgs(kernelPath(), initrd),
        "-uuid",
        uuid,
        "-smbios",
        "type=1,serial=SYSTEST77",
        "-smbios",
        "type=2,serial=MBTEST123",
        "-smbios",
        "type=3,serial=CHTEST42",
        "-smbios",
        "type=4,serial=CPUTEST9",
        "-smbios",
        `type=11,value=io.systemd.credential:system.machine_id=${machineId}`,
        "-smbios",
        "type=11,value=second-oem-string",
        "-device",
        `vmgenid,guid=${genid}`,
        "-nic",
        "user,model=virtio-net-pci,mac=52:54:00:12:34:56",
        "-drive",
        `if=none,id=d0,file=${disk},format=qcow2`,
        "-device",
        "virtio-blk-pci,drive=d0,serial=TESTSERIAL01",
      ]);
      const m = result.markers;
      expectCleanBoot(result);
      expect(markerValue(m, "product_uuid")).toBe(uuid);
      expect(markerValue(m, "product_serial")).toBe("SYSTEST77");
      expect(markerValue(m, "board_serial")).toBe("MBTEST123");
      expect(markerValue(m, "chassis_serial")).toBe("CHTEST42");
      expect(markerValue(m, "sys_vendor")).toBe("QEMU");
      expect(markerValue(m, "processor_serial")).toBe("CPUTEST9");
      expect(m.oem).toEqual([
        `io.systemd.credential:system.machine_id=${machineId}`,
        "second-oem-string",
      ]);
      expect(markerValue(m, "mac:eth0")).toBe("52:54:00:12:34:56");
      expect(Object.keys(m).filter((k) => k.startsWith("mac:"))).toEqual(["mac:eth0"]);
      expect(markerValue(m, "vda_serial")).toBe("TESTSERIAL01");
      expect(markerValue(m, "vmgenid")).toBe("yes");
      expect(markerValue(m, "vmgenid_guid")).toBe(genid);
      expect(markerValue(m, "tpm")).toBe("no");
      expect(markerValue(m, "efi")).toBe("no");
      expect(markerValue(m, "cidata")).toBe("no");
      expect(markerValue(m, "9p")).toBe("no");
      expect(m.efivarfs).toBeUndefined();
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "no vmgenid / no NIC / no disk are reported as absent",
    async () => {
      const result = await timedBoot("SeaBIOS PVH minimal", [
        ...BASE_ARGS,
        ...guestKernelArgs(vmlinux, initrd),
        "-nic",
        "none",
      ]);
      const m = result.markers;
      expectCleanBoot(result);
      expect(markerValue(m, "vmgenid")).toBe("no");
      expect(m.vmgenid_guid).toBeUndefined();
      expect(Object.keys(m).filter((k) => k.startsWith("mac:"))).toEqual([]);
      expect(m.vda_serial).toBeUndefined();
      expect(m.oem).toBeUndefined();
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "cidata ISO on AHCI CD-ROM, virtio-9p share and hook",
    async () => {
      const share = join(work, "share");
      await mkdir(share);
      await writeFile(
        join(share, "hook.sh"),
        [
          "#!/bin/sh",
          'echo "GLINT:hook_saw=$(cat /mnt/cidata/user-data)"',
          'echo "fw=$(cat /sys/class/dmi/id/product_uuid)" > /mnt/glint/result.txt',
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      const token = randomBytes(6).toString("hex");
      const iso = await createCidataIso(join(work, "cidata.iso"), {
        "user-data": `#cloud-config ${token}\n`,
        "meta-data": "instance-id: tiny\n",
      });
      const uuid = randomUUID();
      const result = await timedBoot("SeaBIOS PVH cidata+9p+hook", [
        ...BASE_ARGS,
        ...guestKernelArgs(vmlinux, initrd, "glint.cidata=wait glint.hook=/mnt/glint/hook.sh"),
        "-nic",
        "none",
        "-uuid",
        uuid,
        "-cdrom",
        iso,
        "-virtfs",
        `local,path=${share},mount_tag=glint,security_model=none`,
        "-fw_cfg",
        `name=opt/org.glint/token,string=${token}`,
      ]);
      const m = result.markers;
      expectCleanBoot(result);
      expect(markerValue(m, "cidata")).toMatch(/^\/dev\/sr\d$/);
      expect(markerValue(m, "9p")).toBe("yes");
      expect(markerValue(m, "hook_saw")).toBe(`#cloud-config ${token}`);
      expect(markerValue(m, "hook_rc")).toBe("0");
      expect(markerValue(m, "fwcfg:opt/org.glint/token")).toBe(token);
      expect(await readFile(join(share, "result.txt"), "utf8")).toBe(`fw=${uuid}\n`);
    },
    TEST_TIMEOUT_MS,
  );

  // bzImage, not the PVH vmlinux: QEMU 7.2 places a PVH initrd right below
  // RAM top minus its ACPI allowance, on top of the area SeaBIOS reserves for
  // ACPI tables + the TPM event log; the guest then has no ACPI (no TPM, and
  // poweroff only halts). The bzImage path relocates the initrd below it.
  test.each(["tpm-crb", "tpm-tis"] as const)(
    "swtpm attached as %s is visible as a TPM 2.0",
    async (device) => {
      const tpm = await startTestSwtpm(join(work, `tpm-${device}`), { manufacture: true });
      try {
        const result = await timedBoot(`SeaBIOS bzImage ${device}`, [
          ...BASE_ARGS,
          ...guestKernelArgs(kernel.kernel, initrd),
          "-nic",
          "none",
          ...tpm.qemuArgs(device),
        ]);
        expectCleanBoot(result);
        expect(markerValue(result.markers, "tpm")).toBe("yes");
        expect(markerValue(result.markers, "tpm_version")).toBe("2");
      } finally {
        await tpm.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "OVMF: EFI detected, EFI variable persists in the VARS copy, fresh VARS is empty",
    async () => {
      const ovmf = findOvmf();
      const vars = join(work, "OVMF_VARS.fd");
      const value = `v${randomBytes(6).toString("hex")}`;
      const uuid = randomUUID();
      const efiBoot = async (label: string, append: string, freshVars: boolean) =>
        timedBoot(label, [
          ...BASE_ARGS,
          ...(await ovmfArgs(vars, freshVars, ovmf)),
          ...guestKernelArgs(kernel.kernel, initrd, append),
          "-nic",
          "none",
          "-uuid",
          uuid,
          "-smbios",
          "type=4,serial=EFICPU1",
        ]);

      const write = await efiBoot(
        "OVMF bzImage efivar write",
        `glint.efitest=write glint.efivalue=${value}`,
        true,
      );
      expectCleanBoot(write);
      expect(markerValue(write.markers, "efi")).toBe("yes");
      expect(markerValue(write.markers, "efivarfs")).toBe("yes");
      expect(markerValue(write.markers, "efivar_written")).toBe(value);
      expect(markerValue(write.markers, "product_uuid")).toBe(uuid);
      expect(markerValue(write.markers, "processor_serial")).toBe("EFICPU1");

      const read = await efiBoot("OVMF bzImage efivar read", "glint.efitest=read", false);
      expectCleanBoot(read);
      expect(markerValue(read.markers, "efivar")).toBe(value);

      const fresh = await efiBoot("OVMF bzImage fresh vars", "glint.efitest=read", true);
      expectCleanBoot(fresh);
      expect(markerValue(fresh.markers, "efivar")).toBe("none");
    },
    3 * TEST_TIMEOUT_MS,
  );
});
