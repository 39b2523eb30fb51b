/**
 * The command contract (issue #12): extra operands are refused, not dropped;
 * an unknown command is named with a suggestion; `glint help [command]`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { lines, runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeAll(async () => {
  home = await tempDir("glint-contract-");
  for (const vm of ["a", "b"]) {
    const r = await runCli(["create", vm, "--home", home]);
    expect(r.code, r.stderr).toBe(0);
  }
});

const ids = (vm: string) => fs.readFile(path.join(home, vm, "identifiers.json"), "utf8");

describe("extra operands", () => {
  // (`create` takes several names: see test/cli/bulk-create.test.ts.)
  it.each([[["history", "a", "b"]], [["regen", "sideways", "a", "b"]]])(
    "glint %j exits 2 and changes nothing",
    async (args) => {
      const before = [await ids("a"), await ids("b")];
      const r = await runCli([...args, "--home", home]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/too many arguments|unknown option/);
      expect(lines(r.stderr)).toHaveLength(1);
      expect([await ids("a"), await ids("b")]).toEqual(before);
      expect((await fs.readdir(home)).filter((n) => !n.startsWith(".")).sort()).toEqual(["a", "b"]);
    },
  );

  it("run and qemu-args take QEMU arguments only after --", async () => {
    for (const cmd of ["run", "qemu-args"]) {
      const extra = cmd === "run" ? ["--dry-run"] : [];
      const bad = await runCli([cmd, "a", "b", ...extra, "--home", home]);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr).toMatch(/takes one VM.*only after `--`.*'b'/);
      const mixed = await runCli([cmd, "a", "b", ...extra, "--home", home, "--", "-m", "64"]);
      expect(mixed.code, mixed.stderr).toBe(2);
      expect(mixed.stderr).toMatch(/'b'/);
      const good = await runCli([cmd, "a", ...extra, "--json", "--home", home, "--", "-m", "64"]);
      expect(good.code, good.stderr).toBe(0);
      const argv = JSON.parse(good.stdout) as string[];
      expect(argv.join(" ")).toContain("-m 64");
      expect(argv).not.toContain("b");
    }
  });
});

describe("unknown commands and help", () => {
  it("names the unknown command and suggests the nearest one (exit 2)", async () => {
    const r = await runCli(["shwo", "a", "--home", home]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^glint: unknown command 'shwo' \(did you mean 'show'\?\)/);
    expect(lines(r.stderr)).toHaveLength(1);
    const far = await runCli(["frobnicate", "--json"]);
    expect(far.code).toBe(2);
    expect(JSON.parse(far.stderr)).toMatchObject({
      error: { code: "usage", message: expect.stringMatching(/^unknown command 'frobnicate';/) },
    });
  });

  it("glint help [command] prints help", async () => {
    const all = await runCli(["help"]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^Usage: glint /m);
    const create = await runCli(["help", "create"]);
    expect(create.code, create.stderr).toBe(0);
    expect(create.stdout).toMatch(/^Usage: glint create /m);
    expect(create.stdout).toContain("--base <img>");
  });
});

type Element = {
  vm: string;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
};
const generation = async (vm: string) =>
  (JSON.parse(await ids(vm)) as { generation: number }).generation;

describe("bulk operations", () => {
  it("regen base a b --yes --json regenerates both and prints one element per VM", async () => {
    const before = [await generation("a"), await generation("b")];
    const r = await runCli(["regen", "base", "a", "b", "--yes", "--json", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Element[];
    expect(out.map((e) => [e.vm, e.ok])).toEqual([
      ["a", true],
      ["b", true],
    ]);
    expect(out[0]?.result).toMatchObject({ vm: "a", policy: "base" });
    expect([await generation("a"), await generation("b")]).toEqual(before.map((g) => g + 1));
  });

  it("continues past a failure, reports it in its element, and exits 1", async () => {
    const before = await generation("b");
    const r = await runCli(["regen", "disk", "nosuch", "b", "--yes", "--json", "--home", home]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as Element[];
    expect(out[0]).toMatchObject({ vm: "nosuch", ok: false, error: { code: "not-found" } });
    expect(out[1]).toMatchObject({ vm: "b", ok: true });
    expect(await generation("b")).toBe(before + 1);
    expect(JSON.parse(r.stderr)).toMatchObject({
      error: { code: "not-found", message: expect.stringMatching(/^nosuch: /) },
    });
    // Text: one line per VM.
    const t = await runCli(["seed", "nosuch", "a", "--home", home]);
    expect(t.code).toBe(1);
    expect(lines(t.stdout)).toEqual([
      expect.stringMatching(/^nosuch: FAILED: /),
      expect.stringMatching(/^a: wrote .*seed\.iso$/),
    ]);
  });

  it("--all and --match select VMs; a glob that matches nothing is an error", async () => {
    const all = await runCli(["show", "--all", "--json", "--home", home]);
    expect((JSON.parse(all.stdout) as Element[]).map((e) => e.vm)).toEqual(["a", "b"]);
    const some = await runCli([
      "script",
      "--match",
      "[b-z]*",
      "--jobs",
      "2",
      "--json",
      "--home",
      home,
    ]);
    expect(some.code, some.stderr).toBe(0);
    expect((JSON.parse(some.stdout) as Element[]).map((e) => e.vm)).toEqual(["b"]);
    const none = await runCli(["show", "--match", "zz*", "--home", home]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no VM .* matches 'zz\*'/);
    const both = await runCli(["show", "a", "--all", "--home", home]);
    expect(both.code).toBe(2);
  });

  it("without a terminal, every state-changing command needs --yes and changes nothing", async () => {
    for (const args of [
      ["regen", "base", "a"],
      ["regen", "disk", "a"],
      ["regen", "base", "--all"],
      ["reset", "uefi", "a"],
      ["reset", "tpm", "a"],
      ["nuke", "a", "b"],
    ]) {
      const before = [await ids("a"), await ids("b")];
      const r = await runCli([...args, "--home", home]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/refusing without confirmation.*--yes/);
      expect([await ids("a"), await ids("b")]).toEqual(before);
    }
  });

  it("--discard-overlay is refused where it means nothing", async () => {
    const base = await runCli(["regen", "base", "a", "--discard-overlay", "--yes", "--home", home]);
    expect(base.code).toBe(2);
    expect(base.stderr).toMatch(/unknown option '--discard-overlay'/);
    const disk = await runCli(["regen", "disk", "a", "--discard-overlay", "--yes", "--home", home]);
    expect(disk.code).toBe(2);
    expect(disk.stderr).toMatch(/"a" has no overlay/);
    const before = await ids("a");
    const nuke = await runCli(["nuke", "a", "--discard-overlay", "--yes", "--home", home]);
    expect(nuke.code).toBe(2);
    expect(nuke.stderr).toMatch(/^glint: --discard-overlay: "a" has no overlay\n$/);
    expect(await ids("a")).toBe(before);
  });

  it("nuke and regen on several VMs print one line per VM with its new generation", async () => {
    for (const [args, done] of [
      [["nuke", "a", "b"], "nuked"],
      [["regen", "disk", "--all"], "regenerated"],
    ] as const) {
      const before = [await generation("a"), await generation("b")];
      const r = await runCli([...args, "--yes", "--home", home]);
      expect(r.code, r.stderr).toBe(0);
      expect(lines(r.stdout)).toEqual([
        `a: ${done} (generation ${(before[0] ?? 0) + 1})`,
        `b: ${done} (generation ${(before[1] ?? 0) + 1})`,
      ]);
    }
  });
});

describe("fleet-wide output", () => {
  it("show --json names every VM; a corrupt VM gets its error and the others are shown (exit 1)", async () => {
    const dir = await tempDir("glint-fleet-");
    for (const vm of ["good", "bad"]) {
      const r = await runCli(["create", vm, "--home", dir]);
      expect(r.code, r.stderr).toBe(0);
    }
    await fs.writeFile(path.join(dir, "bad", "identifiers.json"), "{not json");
    const j = await runCli(["show", "--json", "--home", dir]);
    expect(j.code).toBe(1);
    const out = JSON.parse(j.stdout) as Element[];
    expect(out.map((e) => [e.vm, e.ok])).toEqual([
      ["bad", false],
      ["good", true],
    ]);
    expect(out[0]?.error?.code).toBe("invalid-file");
    expect(out[1]?.result).toHaveProperty("vm_uuid");
    const t = await runCli(["show", "--home", dir]);
    expect(t.code).toBe(1);
    expect(t.stdout).toMatch(/^bad: FAILED: /m);
    expect(t.stdout).toMatch(/^good$/m);
  });

  it("create's text output says in words what it wrote; script --stdout --json is refused", async () => {
    const r = await runCli(["create", "words", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain("reset steps:");
    expect(r.stdout).toMatch(/guest files/);
    const s = await runCli(["script", "words", "--stdout", "--json", "--home", home]);
    expect(s.code).toBe(2);
    expect(s.stdout).toBe("");
  });
});

describe("state", () => {
  it("list has a STATE column (stopped; interrupted while an operation's journal is there)", async () => {
    const dir = await tempDir("glint-state-");
    for (const vm of ["s1", "s2"]) {
      const r = await runCli(["create", vm, "--home", dir]);
      expect(r.code, r.stderr).toBe(0);
    }
    await fs.writeFile(path.join(dir, "s2", ".pending.json"), "{}");
    const out = lines((await runCli(["list", "--home", dir])).stdout);
    expect(out[0]).toMatch(/^NAME\s+STATE\s+VM UUID/);
    expect(out[1]).toMatch(/^s1\s+stopped\s/);
    expect(out[2]).toMatch(/^s2\s+interrupted\s/);
    const json = JSON.parse((await runCli(["list", "--json", "--home", dir])).stdout) as {
      name: string;
      state: string;
    }[];
    expect(json.map((r) => [r.name, r.state])).toEqual([
      ["s1", "stopped"],
      ["s2", "interrupted"],
    ]);
  });

  it("show prints a VM block: state, firmware, TPM and its EK, disks, memory, CPUs", async () => {
    const r = await runCli([
      "create",
      "tpmvm",
      "--tpm",
      "--memory",
      "256",
      "--cpus",
      "2",
      "--home",
      home,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const s = await runCli(["show", "tpmvm", "--home", home]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^ {2}VM$/m);
    expect(s.stdout).toMatch(/^ {4}State\s+stopped$/m);
    expect(s.stdout).toMatch(/^ {4}Firmware\s+bios$/m);
    expect(s.stdout).toMatch(/^ {4}TPM\s+tpm-crb, EK sha256:[0-9a-f]{64}$/m);
    expect(s.stdout).toMatch(/^ {4}Overlay\s+no$/m);
    expect(s.stdout).toMatch(/^ {4}Memory\s+256 MiB$/m);
    expect(s.stdout).toMatch(/^ {4}CPUs\s+2$/m);
  });
});

describe("the home from the config file", () => {
  it("--home, then GLINT_HOME, then `home` in $XDG_CONFIG_HOME/glint/config.toml", async () => {
    const dir = await tempDir("glint-config-");
    await fs.mkdir(path.join(dir, "glint"));
    await fs.writeFile(
      path.join(dir, "glint", "config.toml"),
      '# where the VMs live\nhome = "fleet"  # relative to this file\n',
    );
    const env = { XDG_CONFIG_HOME: dir };
    const fromFile = await runCli(["list"], { env, home: null, cwd: dir });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toContain(`no VMs in ${path.join(dir, "glint", "fleet")}`);
    const fromEnv = await runCli(["list"], { env: { ...env, GLINT_HOME: home } });
    expect(fromEnv.stdout).toMatch(/^a\s/m);
    const fromFlag = await runCli(["list", "--home", path.join(dir, "x")], {
      env,
      home: null,
    });
    expect(fromFlag.stdout).toContain(`no VMs in ${path.join(dir, "x")}`);
    await fs.writeFile(path.join(dir, "glint", "config.toml"), "home = /srv/vms\n");
    const bad = await runCli(["list", "--json"], { env, home: null, cwd: dir });
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stderr)).toMatchObject({
      error: {
        code: "invalid-file",
        message: expect.stringMatching(/config\.toml:1: expected key = "value"/),
      },
    });
    await fs.writeFile(path.join(dir, "glint", "config.toml"), 'hom = "x"\n');
    const unknown = await runCli(["list"], { env, home: null, cwd: dir });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/config\.toml: .*hom/);
  });
});

describe("glint edit", () => {
  it("changes memory and CPUs and grows the disk of a stopped VM, after confirming", async () => {
    const r = await runCli(["create", "ed", "--disk-size", "8M", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    const config = async () =>
      JSON.parse(await fs.readFile(path.join(home, "ed", "config.json"), "utf8")) as {
        memory_mb: number;
        cpus: number;
      };
    const before = await config();
    const refused = await runCli(["edit", "ed", "--memory", "256", "--home", home]);
    expect(refused.code).toBe(2);
    expect(await config()).toEqual(before);
    const ok = await runCli([
      "edit",
      "ed",
      "--memory",
      "256",
      "--cpus",
      "2",
      "--disk-size",
      "16M",
      "--yes",
      "--home",
      home,
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await config()).toMatchObject({ memory_mb: 256, cpus: 2 });
    const argv = JSON.parse((await runCli(["qemu-args", "ed", "--json", "--home", home])).stdout);
    expect(argv.join(" ")).toMatch(/-m 256M -smp 2\b/);
    const { execFileSync } = await import("node:child_process");
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "--output=json", path.join(home, "ed", "base.qcow2")], {
        encoding: "utf8",
      }),
    ) as { "virtual-size": number };
    expect(info["virtual-size"]).toBe(16 * 2 ** 20);
    const shrink = await runCli(["edit", "ed", "--disk-size", "8M", "--yes", "--home", home]);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toMatch(/never shrinks/);
    const nothing = await runCli(["edit", "ed", "--yes", "--home", home]);
    expect(nothing.code).toBe(2);
  });
});
