/**
 * `glint edit` beyond memory, CPUs and disk size (test/cli/contract.test.ts):
 * firmware, TPM and NICs of a stopped VM, with the old NVRAM and TPM state
 * kept in history/, and refused while the VM runs.
 */
import { spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { extraMacsOf } from "../../src/identity/model.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = path.join(await tempDir("glint-cli-edit-"), "home");
});

const glint = (...args: string[]) => runCli(["--home", home, ...args]);
const ok = (...args: string[]) => runCliOk(["--home", home, ...args]);
const config = async (vm: string) =>
  JSON.parse(await fs.readFile(path.join(home, vm, "config.json"), "utf8")) as Record<
    string,
    unknown
  >;
const history = async (vm: string) => fs.readdir(path.join(home, vm, "history")).catch(() => []);

describe("glint edit --firmware", () => {
  it("bios → uefi → uefi-secure → bios: fresh NVRAM each time, the old one in history/, after confirming", async () => {
    await ok("create", "fw", "--no-sysprep");
    const dir = path.join(home, "fw");
    const refused = await glint("edit", "fw", "--firmware", "uefi");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    expect((await config("fw")).firmware).toBe("bios");

    await ok("edit", "fw", "--firmware", "uefi", "--yes");
    expect(await config("fw")).toMatchObject({ firmware: "uefi" });
    expect(existsSync(path.join(dir, "uefi-seed.fd"))).toBe(true);
    expect(existsSync(path.join(dir, "uefi-instance.fd"))).toBe(true);
    expect((await ok("qemu-args", "fw")).match(/if=pflash/g)).toHaveLength(2);
    // The guest's variables, to be kept in history/ by the next change.
    await fs.appendFile(path.join(dir, "uefi-instance.fd"), "");
    const written = await fs.readFile(path.join(dir, "uefi-instance.fd"));

    const out = JSON.parse(await ok("edit", "fw", "--firmware", "uefi-secure", "--yes", "--json"));
    expect(out.changed.join()).toMatch(/uefi → uefi-secure/);
    expect(await ok("qemu-args", "fw")).toContain("smm=on");
    const archived = (await history("fw")).filter((n) => n.includes("_edit_uefi-instance"));
    expect(archived).toHaveLength(1);
    expect(await fs.readFile(path.join(dir, "history", archived[0] ?? ""))).toEqual(written);

    await ok("edit", "fw", "--firmware", "bios", "--yes");
    expect(await config("fw")).toMatchObject({ firmware: "bios", firmware_code: null });
    expect(existsSync(path.join(dir, "uefi-instance.fd"))).toBe(false);
    expect(existsSync(path.join(dir, "uefi-seed.fd"))).toBe(false);
    expect((await history("fw")).filter((n) => n.includes("_edit_uefi-instance"))).toHaveLength(2);
    expect(await ok("qemu-args", "fw")).not.toContain("pflash");
  });
});

describe("glint edit --tpm / --no-tpm", () => {
  it("adds a TPM made by swtpm (reset tpm then works) and removes it into history/", async () => {
    await ok("create", "t", "--no-sysprep");
    const before = await glint("reset", "tpm", "t", "--yes");
    expect(before.code).toBe(1);
    await ok("edit", "t", "--tpm", "--yes");
    expect(await config("t")).toMatchObject({ tpm: true });
    expect(await ok("show", "t")).toMatch(/sha256:[0-9a-f]{64}/);
    expect(await ok("qemu-args", "t")).toContain("tpm-crb");
    const reset = JSON.parse(await ok("reset", "tpm", "t", "--yes", "--json"));
    expect(reset.ek_fingerprint).toMatch(/^sha256:/);

    await ok("edit", "t", "--no-tpm", "--yes");
    expect(await config("t")).toMatchObject({ tpm: false });
    expect(existsSync(path.join(home, "t", "tpm"))).toBe(false);
    expect((await history("t")).some((n) => /_edit_tpm2-00-[0-9a-f]{6}\.permall$/.test(n))).toBe(
      true,
    );
    expect(await ok("qemu-args", "t")).not.toContain("tpm");
  });
});

describe("glint edit --nics", () => {
  it("gives new NICs their extra MACs at once, and keeps them when NICs are removed and added back", async () => {
    await ok("create", "n", "--no-sysprep");
    await ok("edit", "n", "--nics", "3", "--yes");
    const ids = await readIds(home, "n");
    expect(extraMacsOf(ids)).toHaveLength(2);
    expect(await config("n")).toMatchObject({ nics: 3 });
    const nicArgs = async () =>
      ((await ok("qemu-args", "n")).match(/-nic \S+/g) ?? []).map(
        (a) => /mac=([^,\s']+)/.exec(a)?.[1],
      );
    expect(await nicArgs()).toEqual([ids.mac_address, ...extraMacsOf(ids)]);
    await ok("edit", "n", "--nics", "1", "--yes");
    expect(await nicArgs()).toEqual([ids.mac_address]);
    await ok("edit", "n", "--nics", "2", "--yes");
    expect(await nicArgs()).toEqual([ids.mac_address, extraMacsOf(ids)[0]]);
    const check = await glint("registry", "check");
    expect(check.code, check.stdout).toBe(0);
  });

  it("refuses bad values in one line, changing nothing", async () => {
    await ok("create", "x", "--no-sysprep", "--net", "none");
    const before = await config("x");
    for (const args of [
      ["--nics", "2"],
      ["--nics", "0"],
      ["--cpus", "0"],
      ["--firmware", "efi"],
    ]) {
      const r = await glint("edit", "x", ...args, "--yes");
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(await config("x")).toEqual(before);
  });
});

describe("glint edit while the VM runs", () => {
  it("is refused (busy), changing nothing", async () => {
    await ok("create", "r", "--no-sysprep");
    const pidfile = path.join(home, "r", "qemu.pid");
    // A stand-in for QEMU: a live process whose command line names the pidfile.
    const fake = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)", pidfile], {
      stdio: "ignore",
    });
    try {
      await fs.writeFile(pidfile, `${fake.pid}\n`);
      const before = await config("r");
      for (const args of [["--memory", "256"], ["--tpm"], ["--firmware", "uefi"]]) {
        const r = await glint("edit", "r", ...args, "--yes");
        expect(r.code, args.join(" ")).toBe(1);
        expect(r.stderr).toMatch(/running/);
      }
      expect(await config("r")).toEqual(before);
      expect(existsSync(path.join(home, "r", "tpm"))).toBe(false);
    } finally {
      fake.kill("SIGKILL");
    }
  });
});
