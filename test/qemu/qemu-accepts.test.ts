/**
 * Real QEMU: every argv that buildVmArgv produces must be accepted by
 * qemu-system-x86_64 (it stays up, paused, for 2 s) and QEMU must report
 * the identity back over QMP.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireTool } from "../../src/host/tools.js";
import type { SystemIdentifiers } from "../../src/identity/index.js";
import { createBlankDisk, createOverlay } from "../../src/qemu/img.js";
import {
  applyIdentifiersToQemuCommand,
  buildVmArgv,
  type FirmwareFiles,
} from "../../src/qemu/index.js";
import { diskSerial } from "../../src/qemu/mapping.js";
import type { VmConfigInput } from "../../src/vm/config.js";
import { type VmPaths, vmPaths } from "../../src/vm/layout.js";
import { identityFromSeed } from "../support/identity.js";
import { config, connectQmp } from "../support/qemu.js";
import { startTestSwtpm, type TestSwtpm } from "../support/swtpm.js";
import { tempDir } from "../support/tmp.js";

const OVMF = "/usr/share/OVMF";

let root: string;
let paths: VmPaths;
const swtpms: TestSwtpm[] = [];
let qemu: string;

beforeAll(async () => {
  root = await tempDir("glint-qemu-run-");
  qemu = await requireTool("qemu-system-x86_64");
  paths = vmPaths(path.join(root, "home,with,commas"), "demo");
  await mkdir(paths.dir, { recursive: true });
  await mkdir(paths.shared, { recursive: true });
  await mkdir(paths.tpm, { recursive: true });
  await writeFile(paths.script, "#!/bin/sh\n");
  await createBlankDisk(paths.base, "64M");
  await createOverlay(paths.base, paths.overlay);
  await writeFile(paths.seedIso, Buffer.alloc(64 * 1024));
});

afterAll(async () => {
  for (const t of swtpms) await t.stop();
});

/**
 * A fresh swtpm (it exits when its client disconnects). swtpm cannot take a
 * comma in its own --ctrl path, so QEMU reaches it through a symlink whose
 * path has one, which exercises the ,, escaping.
 */
async function tpmSocket(name: string): Promise<string> {
  const t = await startTestSwtpm(path.join(root, `swtpm-${name}`));
  swtpms.push(t);
  const link = path.join(paths.tpm, `swtpm,${name}.sock`);
  await symlink(t.socket, link);
  return link;
}

interface RunningQemu {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startQemu(argv: readonly string[], qmpSocket: string): RunningQemu {
  const child = spawn(
    qemu,
    [
      ...argv,
      "-machine",
      "accel=tcg",
      "-display",
      "none",
      "-S",
      "-monitor",
      "none",
      "-serial",
      "none",
      "-qmp",
      `unix:${qmpSocket},server=on,wait=off`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return { child, stderr: () => stderr, exited };
}

async function expectAcceptedByQemu(
  name: string,
  argv: readonly string[],
  ids: SystemIdentifiers,
  expectTpm: string | undefined,
  expectNic: boolean,
  expectDisk = true,
): Promise<void> {
  const qmpSocket = path.join(root, `${name}.qmp`);
  const vm = startQemu(argv, qmpSocket);
  try {
    const early = await Promise.race([
      vm.exited,
      new Promise((r) => setTimeout(() => r("alive"), 2000)),
    ]);
    expect(early, `QEMU exited early: ${vm.stderr()}`).toBe("alive");
    expect(vm.child.exitCode).toBeNull();
    const qmp = await connectQmp(qmpSocket);
    try {
      expect(await qmp.execute("query-uuid")).toEqual({ UUID: ids.vm_uuid });
      expect(await qmp.execute("query-vm-generation-id")).toEqual({ guid: ids.vm_generation_id });
      const qtree = (await qmp.execute("human-monitor-command", {
        "command-line": "info qtree",
      })) as string;
      if (expectDisk) expect(qtree).toContain(`serial = "${diskSerial(ids.disk_uuid)}"`);
      if (expectNic) expect(qtree).toContain(`mac = "${ids.mac_address}"`);
      else expect(qtree).not.toContain("virtio-net-pci");
      const tpm = (await qmp.execute("query-tpm")) as Array<{ model: string }>;
      expect(tpm.map((t) => t.model)).toEqual(expectTpm ? [expectTpm] : []);
      await qmp.execute("quit");
    } finally {
      qmp.close();
    }
    await vm.exited;
    expect(vm.stderr()).not.toMatch(/error|invalid|deprecated/i);
  } finally {
    if (vm.child.exitCode === null && vm.child.signalCode === null) vm.child.kill("SIGKILL");
    await vm.exited;
  }
}

async function firmwareCopy(code: string, vars: string, secure: boolean): Promise<FirmwareFiles> {
  const copy = path.join(paths.dir, `uefi-instance,${secure ? "ms" : "plain"}.fd`);
  await copyFile(path.join(OVMF, vars), copy);
  return { code: path.join(OVMF, code), vars: copy, secure };
}

describe("qemu-system-x86_64 accepts buildVmArgv output", () => {
  const ids = identityFromSeed("qemu-accepts");

  it("BIOS, base disk, user network, seed ISO, 9p share", async () => {
    const argv = buildVmArgv({
      name: "demo",
      ids,
      config: config({ memory_mb: 256 }),
      paths,
      seedIso: paths.seedIso,
      shareDir: paths.shared,
    });
    await expectAcceptedByQemu("bios", argv, ids, undefined, true);
  });

  it("UEFI (OVMF_CODE_4M.fd), overlay, TPM CRB", async () => {
    const cfg: VmConfigInput = {
      firmware: "uefi",
      overlay: true,
      tpm: true,
      tpm_model: "tpm-crb",
      memory_mb: 256,
    };
    const argv = buildVmArgv({
      name: "demo",
      ids,
      config: config(cfg),
      paths,
      firmware: await firmwareCopy("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", false),
      tpmSocket: await tpmSocket("uefi"),
      shareDir: paths.shared,
    });
    await expectAcceptedByQemu("uefi", argv, ids, "tpm-crb", true);
  });

  it("UEFI Secure Boot (OVMF_CODE_4M.ms.fd, smm=on), TPM TIS, no network, extra args", async () => {
    const cfg: VmConfigInput = {
      firmware: "uefi-secure",
      overlay: true,
      tpm: true,
      tpm_model: "tpm-tis",
      net: "none",
      memory_mb: 256,
      cpus: 2,
    };
    const other = identityFromSeed("other");
    const argv = buildVmArgv({
      name: "demo",
      ids,
      config: config(cfg),
      paths,
      firmware: await firmwareCopy("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd", true),
      tpmSocket: await tpmSocket("secure"),
      seedIso: paths.seedIso,
      extra: [
        "-uuid",
        other.vm_uuid,
        "-device",
        `vmgenid,guid=${other.vm_generation_id}`,
        "-rtc",
        "base=utc",
      ],
    });
    await expectAcceptedByQemu("secure", argv, ids, "tpm-tis", false);
  });

  it("applyIdentifiersToQemuCommand on a hand-written argv (JSON -device NIC, vmgenid with id)", async () => {
    const base = [
      "-machine",
      "q35",
      "-m",
      "128M",
      "-netdev",
      "user,id=n0",
      "-device",
      '{"driver":"virtio-net-pci","netdev":"n0","mac":"52:54:00:00:00:09","id":"nic0"}',
      "-device",
      "vmgenid,id=vg0,guid=auto",
      "-uuid",
      identityFromSeed("stale").vm_uuid,
    ];
    const argv = applyIdentifiersToQemuCommand(base, ids, { hostname: "hand-written" });
    await expectAcceptedByQemu("hand", argv, ids, undefined, true, false);
  });

  it("rejects the run when QEMU refuses an option (the check can fail)", async () => {
    const argv = [
      ...buildVmArgv({ name: "demo", ids, config: config(), paths }),
      "-device",
      "no-such-device",
    ];
    const vm = startQemu(argv, path.join(root, "bad.qmp"));
    const code = await Promise.race([
      vm.exited,
      new Promise((r) => setTimeout(() => r("alive"), 5000)),
    ]);
    if (code === "alive") vm.child.kill("SIGKILL");
    expect(code).not.toBe("alive");
    expect(vm.stderr()).toMatch(/no-such-device/);
  });
});
