/**
 * A missing host tool (qemu-img, OVMF, swtpm, genisoimage, QEMU) gives a
 * one-line error naming the Debian package, exit code 1, no stack trace, and
 * leaves nothing behind.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { lines, runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

const exec = promisify(execFile);
let dir: string;
let base: string;

beforeAll(async () => {
  dir = await tempDir("glint-tools-");
  base = path.join(dir, "base.qcow2");
  await exec("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
});

const missing = path.join("/nonexistent", "glint-missing-tool");

describe("missing host tools", () => {
  it.each([
    [
      "qemu-img",
      { GLINT_QEMU_IMG: missing },
      ["--disk-size", "8M"],
      /qemu-img.*apt-get install qemu-utils/,
    ],
    [
      "swtpm_setup",
      { GLINT_SWTPM_SETUP: missing },
      ["--tpm"],
      /swtpm_setup.*apt-get install swtpm-tools/,
    ],
    ["swtpm", { GLINT_SWTPM: missing }, ["--tpm"], /swtpm.*apt-get install swtpm/],
    ["genisoimage", { GLINT_GENISOIMAGE: missing }, [], /genisoimage.*apt-get install genisoimage/],
    [
      "OVMF",
      { GLINT_OVMF_CODE: missing, GLINT_OVMF_VARS: missing },
      ["--firmware", "uefi"],
      /OVMF|GLINT_OVMF_CODE/,
    ],
  ] as const)("%s", async (_tool, env, args, message) => {
    const home = path.join(dir, `home-${_tool}`);
    const r = await runCli(["create", "vm", "--home", home, ...args], {
      env: { ...process.env, ...env },
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // Nothing was created for the VM.
    const entries = await fs.readdir(home).catch(() => []);
    expect(entries.filter((e) => !e.startsWith("."))).toEqual([]);
  });

  it("qemu-system-x86_64 missing: glint run says which package to install", async () => {
    const home = path.join(dir, "home-qemu");
    const created = await runCli(["create", "vm", "--home", home]);
    expect(created.code, created.stderr).toBe(0);
    const r = await runCli(["run", "vm", "--home", home, "--dry-run"], {
      env: { ...process.env, GLINT_QEMU: missing },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/qemu-system-x86_64.*apt-get install qemu-system-x86/);
    expect(lines(r.stderr)).toHaveLength(1);
  });
});
