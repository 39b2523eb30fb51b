/**
 * Every NIC gets a unique, stable MAC (`create --nics N`, extra `-nic` /
 * `-device` NICs after `--`), kept in identifiers.json as `extra_macs`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { extraMacsOf } from "../../src/identity/model.js";
import { homeIdOf } from "../../src/registry/registry.js";
import { openSqlite } from "../../src/registry/sqlite.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

/** Every row of the home's registry of issued values (SQLite), as JSON, sorted. */
async function registryValues(dir: string): Promise<string[]> {
  const store = openSqlite(path.join(dir, ".glint", "registry.db"));
  try {
    return (await store.rowsOf(await homeIdOf(dir))).map((r) => JSON.stringify(r)).sort();
  } finally {
    await store.close();
  }
}

let home: string;
beforeEach(async () => {
  home = path.join(await tempDir("glint-cli-nics-"), "home");
});

const glint = (...args: string[]) => runCli(["--home", home, ...args]);
const ok = (...args: string[]) => runCliOk(["--home", home, ...args]);

/** The `mac=` of every NIC in `glint qemu-args VM --json [--draw-macs] [-- extra]`, in order. */
async function nicMacs(vm: string, extra: string[] = [], draw = false): Promise<string[]> {
  const argv = JSON.parse(
    await ok(
      "qemu-args",
      vm,
      "--json",
      ...(draw ? ["--draw-macs"] : []),
      ...(extra.length > 0 ? ["--", ...extra] : []),
    ),
  ) as string[];
  const out: string[] = [];
  argv.forEach((a, i) => {
    const next = argv[i + 1] ?? "";
    if (a === "-nic" || (a === "-device" && /^virtio-net|^e1000/.test(next))) {
      out.push(/(?:^|,)mac=([^,]+)/.exec(next)?.[1] ?? "none");
    }
  });
  return out;
}

describe("--nics and extra_macs", () => {
  it("create --nics 3 gives two extra MACs, all unique, placed on the three NICs, stable across runs", async () => {
    await ok("create", "a", "--nics", "3", "--no-sysprep");
    const ids = await readIds(home, "a");
    const extra = extraMacsOf(ids);
    expect(extra).toHaveLength(2);
    expect(new Set([ids.mac_address, ...extra]).size).toBe(3);
    expect(await nicMacs("a")).toEqual([ids.mac_address, ...extra]);
    expect(await nicMacs("a")).toEqual([ids.mac_address, ...extra]);
    expect(JSON.parse(await ok("show", "a", "--json")).extra_macs).toEqual(extra);
    expect(await ok("show", "a")).toContain(extra.join(" "));
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it("an extra -nic or NIC -device without mac= gets a new extra MAC with --draw-macs, kept and reused on the next run", async () => {
    await ok("create", "b", "--no-sysprep");
    const before = await readIds(home, "b");
    expect(extraMacsOf(before)).toEqual([]);
    expect(
      JSON.parse(await fs.readFile(path.join(home, "b", "identifiers.json"), "utf8")),
    ).not.toHaveProperty("extra_macs");
    const extra = [
      "-nic",
      "user,model=e1000",
      "-netdev",
      "user,id=n2",
      "-device",
      "virtio-net-pci,netdev=n2",
    ];
    const first = await nicMacs("b", extra, true);
    const ids = await readIds(home, "b");
    expect(extraMacsOf(ids)).toHaveLength(2);
    expect(first).toEqual([ids.mac_address, ...extraMacsOf(ids)]);
    expect(await nicMacs("b", extra)).toEqual(first);
    // Fewer NICs the next time: the same MACs in the same positions.
    expect(await nicMacs("b", extra.slice(0, 2))).toEqual(first.slice(0, 2));
    // Every other value is unchanged.
    expect({ ...ids, extra_macs: undefined, updated_at: "" }).toEqual({
      ...before,
      updated_at: "",
    });
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it("qemu-args and run --dry-run never draw a missing NIC MAC: refused in one line, identifiers.json and registry unchanged", async () => {
    await ok("create", "c", "--no-sysprep");
    // Its config asks for 3 NICs but the identity has no extra MAC (edited by hand).
    const config = path.join(home, "c", "config.json");
    await fs.writeFile(
      config,
      JSON.stringify({ ...JSON.parse(await fs.readFile(config, "utf8")), nics: 3 }),
    );
    const before = await fs.readFile(path.join(home, "c", "identifiers.json"), "utf8");
    const values = await registryValues(home);
    expect(values.some((v) => v.includes('"vm":"c"'))).toBe(true);
    for (const [cmd, missing] of [
      [["qemu-args", "c"], 2],
      [["run", "c", "--dry-run"], 2],
      [["qemu-args", "c", "--", "-nic", "user,model=e1000"], 3],
      [["run", "c", "--dry-run", "--", "-nic", "user,model=e1000"], 3],
    ] as const) {
      const r = await glint(...cmd);
      expect(r.code, `${cmd.join(" ")}: ${r.stderr}`).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        `glint: VM "c" has no MAC yet for ${missing} of its NICs, and this command changes nothing (it draws none); draw and keep them with \`glint qemu-args c --draw-macs\` (with the same QEMU arguments after --), or \`glint edit c --nics N\` for its own NICs\n`,
      );
      expect(await fs.readFile(path.join(home, "c", "identifiers.json"), "utf8")).toBe(before);
      expect(await registryValues(home)).toEqual(values);
    }
    const json = await glint("qemu-args", "c", "--json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stderr).error.code).toBe("unsupported");
    // --draw-macs draws them once; then every read-only command gives the same MACs.
    const drawn = await nicMacs("c", [], true);
    const ids = await readIds(home, "c");
    expect(extraMacsOf(ids)).toHaveLength(2);
    expect(drawn).toEqual([ids.mac_address, ...extraMacsOf(ids)]);
    expect(await nicMacs("c")).toEqual(drawn);
    const dry = await ok("run", "c", "--dry-run");
    for (const mac of extraMacsOf(ids)) expect(dry).toContain(mac);
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it("a -nic with another VM's MAC (primary or extra) is refused in one line naming that VM, changing nothing", async () => {
    await ok("create", "a", "--nics", "2", "--no-sysprep");
    await ok("create", "b", "--no-sysprep");
    const a = await readIds(home, "a");
    const before = await fs.readFile(path.join(home, "b", "identifiers.json"), "utf8");
    for (const mac of [
      a.mac_address,
      extraMacsOf(a)[0] ?? "",
      extraMacsOf(a)[0]?.toUpperCase() ?? "",
    ]) {
      for (const cmd of [
        ["qemu-args", "b"],
        ["run", "b", "--dry-run"],
      ]) {
        const r = await glint(...cmd, "--", "-nic", `user,mac=${mac}`);
        expect(r.code, `${cmd.join(" ")} ${mac}`).toBe(1);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(`belongs to VM "a"`);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
    }
    expect(await fs.readFile(path.join(home, "b", "identifiers.json"), "utf8")).toBe(before);
    // Its own extra MAC, or a fresh one nobody holds, is fine.
    const own = await glint("qemu-args", "a", "--", "-nic", `user,mac=${extraMacsOf(a)[0]}`);
    expect(own.code, own.stderr).toBe(0);
    const free = await glint("qemu-args", "b", "--", "-nic", "user,mac=52:54:00:00:00:01");
    expect(free.code, free.stderr).toBe(0);
  });

  it("regen base and nuke redraw the extra MACs (the old ones in history/), regen disk keeps them", async () => {
    await ok("create", "a", "--nics", "3", "--no-sysprep");
    const g1 = await readIds(home, "a");
    await ok("regen", "disk", "a", "--yes");
    const g2 = await readIds(home, "a");
    expect(extraMacsOf(g2)).toEqual(extraMacsOf(g1));
    await ok("regen", "base", "a", "--yes");
    const g3 = await readIds(home, "a");
    expect(extraMacsOf(g3)).toHaveLength(2);
    for (const m of extraMacsOf(g2)) expect(extraMacsOf(g3)).not.toContain(m);
    await ok("nuke", "a", "--yes");
    const g4 = await readIds(home, "a");
    expect(extraMacsOf(g4)).toHaveLength(2);
    for (const m of extraMacsOf(g3)) expect(extraMacsOf(g4)).not.toContain(m);
    const history = JSON.parse(await ok("history", "a", "--json")) as {
      identifiers: { extra_macs?: string[] };
      changes: { field: string }[];
    }[];
    expect(history.map((h) => h.identifiers.extra_macs)).toEqual([
      extraMacsOf(g1),
      extraMacsOf(g2),
      extraMacsOf(g3),
    ]);
    expect(history[1]?.changes.map((c) => c.field)).toContain("extra_macs");
    expect(history[0]?.changes.map((c) => c.field)).not.toContain("extra_macs");
    const check = await glint("registry", "check");
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it("an extra MAC copied into another VM is a duplicate for doctor and for the registry", async () => {
    await ok("create", "a", "--nics", "2", "--no-sysprep");
    await ok("create", "b", "--no-sysprep");
    const a = await readIds(home, "a");
    const file = path.join(home, "b", "identifiers.json");
    const b = JSON.parse(await fs.readFile(file, "utf8"));
    await fs.writeFile(file, JSON.stringify({ ...b, extra_macs: extraMacsOf(a) }));
    const doctor = await glint("doctor", "--json");
    expect(doctor.code).toBe(1);
    expect(JSON.parse(doctor.stdout).duplicates).toEqual([
      { field: "extra_macs", value: extraMacsOf(a)[0], vms: ["a", "b"] },
    ]);
    const show = await glint("qemu-args", "b");
    expect(show.code).toBe(1);
    expect(show.stderr).toContain('VM "a"');
  });

  it("refuses --nics with --net none or tap, and out of range, in one line, creating nothing", async () => {
    for (const args of [
      ["--nics", "2", "--net", "none"],
      ["--nics", "2", "--net", "tap", "--net-ifname", "tap0"],
      ["--nics", "0"],
      ["--nics", "17"],
    ]) {
      const r = await glint("create", "x", ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    await expect(fs.stat(path.join(home, "x"))).rejects.toThrow();
  });
});
