/**
 * `glint run` on a host without a display, and `--accel`: checked on the
 * command `--dry-run` prints (the KVM start watch itself is tested in
 * test/ops/kvm-watch.test.ts).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeAll(async () => {
  home = await tempDir("glint-headless-");
  const r = await runCli(["create", "vm", "--home", home]);
  expect(r.code, r.stderr).toBe(0);
});

async function dryRun(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const r = await runCli(["run", "vm", "--dry-run", "--json", "--home", home, ...args], {
    env: { DISPLAY: "", WAYLAND_DISPLAY: "", ...env },
  });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as string[];
}

const has = (argv: string[], ...seq: string[]) =>
  argv.some((_, i) => seq.every((s, j) => argv[i + j] === s));

describe("glint run without a display", () => {
  it("defaults to -display none with the serial console on the terminal", async () => {
    const argv = await dryRun([]);
    expect(has(argv, "-display", "none")).toBe(true);
    expect(has(argv, "-serial", "mon:stdio")).toBe(true);
  });

  it("leaves the display alone when there is one, or when the QEMU arguments choose", async () => {
    const x = await dryRun([], { DISPLAY: ":0" });
    expect(x).not.toContain("-display");
    const wayland = await dryRun([], { WAYLAND_DISPLAY: "wayland-0" });
    expect(wayland).not.toContain("-display");
    const chosen = await dryRun(["--", "-nographic"]);
    expect(chosen).not.toContain("-display");
    expect(chosen).not.toContain("mon:stdio");
    const vnc = await dryRun(["--", "-vnc", ":1"]);
    expect(vnc).not.toContain("mon:stdio");
  });
});

describe("--accel", () => {
  it("kvm and tcg choose the accelerator", async () => {
    expect(has(await dryRun(["--accel", "tcg"]), "-accel", "tcg")).toBe(true);
    const kvm = await dryRun(["--accel", "kvm"]);
    expect(has(kvm, "-accel", "kvm")).toBe(true);
    expect(has(kvm, "-accel", "tcg")).toBe(false);
  });

  it("refuses --accel together with -accel among the QEMU arguments, and unknown values", async () => {
    const both = await runCli([
      "run",
      "vm",
      "--accel",
      "kvm",
      "--dry-run",
      "--home",
      home,
      "--",
      "-accel",
      "tcg",
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/not both/);
    const bad = await runCli(["run", "vm", "--accel", "hvf", "--dry-run", "--home", home]);
    expect(bad.code).toBe(2);
  });
});
