/**
 * `glint sysprep IMAGE --vm VM` through the real binary: the VM's identity
 * lands in an overlay of the reference image; --dry-run writes nothing; a
 * blank image exits 1 naming what it found; a busy VM is refused.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { inspectImage, type SysprepReport } from "../../src/sysprep/index.js";
import { vmPaths } from "../../src/vm/layout.js";
import { acquireLock } from "../../src/vm/lock.js";
import { runCli } from "../support/cli.js";
import { type DiskImage, diskImage } from "../support/disk-image.js";
import { run, sha256 } from "../support/disk-read.js";
import { tempDir } from "../support/tmp.js";

let home: string;
let img: DiskImage;
beforeAll(async () => {
  home = await tempDir("glint-cli-sysprep-");
  img = await diskImage({ table: "gpt" });
  const r = await runCli(["create", "web-1", "--home", home]);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

async function overlayOf(name: string): Promise<string> {
  const file = path.join(home, name);
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.qcow2, file]);
  return file;
}

describe("glint sysprep", () => {
  it("applies the VM's identity and prints a JSON report", async () => {
    const ids = JSON.parse(
      await fs.readFile(path.join(home, "web-1", "identifiers.json"), "utf8"),
    ) as Record<string, string>;
    const image = await overlayOf("a.qcow2");
    const r = await runCli(["sysprep", image, "--vm", "web-1", "--home", home, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as SysprepReport;
    expect(report.status).toBe("applied");
    expect(report.changes.find((c) => c.kind === "gpt-disk-guid")?.new).toBe(ids.disk_uuid);
    const seen = await inspectImage(image);
    expect(seen.diskGuid).toBe(ids.disk_uuid);
    expect(seen.machineId).toBe(ids.machine_id);
    expect(seen.hostname).toBe("web-1");
    expect(seen.partitions.find((p) => p.number === 3)).toMatchObject({
      partuuid: ids.partition_uuid,
      uuid: ids.filesystem_uuid,
    });
  }, 60_000);

  it("--dry-run lists the plan in text and writes nothing", async () => {
    const image = await overlayOf("b.qcow2");
    const before = await sha256(image);
    const r = await runCli(["sysprep", image, "--vm", "web-1", "--home", home, "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: planned/);
    expect(r.stdout).toMatch(
      /would change GPT disk GUID: 0b0b0b0b-1111-4222-8333-444444444444 -> /,
    );
    expect(r.stdout).toContain("/etc/fstab");
    expect(await sha256(image)).toBe(before);
  }, 60_000);

  it("a blank image exits 1 and names what it found", async () => {
    const image = path.join(home, "blank.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", image, "32M"]);
    const r = await runCli(["sysprep", image, "--vm", "web-1", "--home", home]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^glint: .*blank\.qcow2: nothing to re-identify: found a blank disk/m);
  });

  it("refuses while another process holds the VM, and for a VM without identity", async () => {
    const image = await overlayOf("c.qcow2");
    const before = await sha256(image);
    const lock = await acquireLock(vmPaths(home, "web-1").lock, { purpose: "test", vm: "web-1" });
    try {
      const r = await runCli(["sysprep", image, "--vm", "web-1", "--home", home]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/busy/);
    } finally {
      await lock.release();
    }
    const r2 = await runCli(["sysprep", image, "--vm", "nope", "--home", home]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr.trim().split("\n")).toHaveLength(1);
    expect(await sha256(image)).toBe(before);
  });

  it("a missing --vm is a usage error (exit 2)", async () => {
    const r = await runCli(["sysprep", path.join(home, "x.qcow2"), "--home", home]);
    expect(r.code).toBe(2);
  });
});
