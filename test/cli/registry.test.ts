/** `glint registry config|check` and `--registry` through the built CLI. */
import { existsSync } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = path.join(await tempDir("glint-cli-registry-"), "home");
});

describe("glint registry", () => {
  it("config refuses a prefix that is not locally administered unicast, in one line, writing nothing", async () => {
    for (const bad of ["01", "00:16:3e", "52:54:00:00:00:00", "zz"]) {
      const r = await runCli(["registry", "config", "--mac-prefix", bad, "--home", home]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr.trim().split("\n"), bad).toHaveLength(1);
      expect(r.stderr).toMatch(/mac_prefix/);
    }
    expect(existsSync(path.join(home, ".glint", "config.json"))).toBe(false);
  });

  it("a home with mac_prefix 02 draws 40-bit MACs; check agrees", async () => {
    const set = await runCli([
      "registry",
      "config",
      "--mac-prefix",
      "02",
      "--home",
      home,
      "--json",
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ mac_prefix: "02", mac_space: 2 ** 40 });
    const created = await runCli(["create", "vm", "--home", home, "--json"]);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).identifiers.mac_address).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    const check = await runCli(["registry", "check", "--home", home, "--json"]);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ vms: 1, drift: [] });
  });

  it("--registry selects another SQLite file for the command", async () => {
    const db = path.join(path.dirname(home), "elsewhere.db");
    const r = await runCli(["--registry", db, "create", "vm", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(db)).toBe(true);
    expect(existsSync(path.join(home, ".glint", "registry.db"))).toBe(false);
  });
});
