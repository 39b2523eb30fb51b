/**
 * Crashes and a large home: kill -9 during concurrent creates leaves every
 * VM complete or recoverable and registry and files in agreement; `registry
 * rebuild` on 1,000 VMs with planted duplicates names each one.
 */
import { spawn } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import { POLICIES } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import { vmPaths } from "../../src/vm/layout.js";
import { valueKey } from "../../src/vm/registry.js";
import { writeIdentifiers } from "../../src/vm/store.js";
import { runCli } from "../support/cli.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
beforeEach(async () => {
  dir = await tempDir("glint-registry-crash-");
});

describe("kill -9 during creates", () => {
  it("every VM is complete or absent once touched again, and `registry check` exits 0", async () => {
    const home = path.join(dir, "home");
    const children = Array.from({ length: 12 }, (_, i) =>
      spawn(process.execPath, [CLI, "create", `vm-${i}`, "--home", home], { stdio: "ignore" }),
    );
    const exited = children.map((c) => new Promise((resolve) => c.on("close", resolve)));
    // Kill every other one at staggered moments, whatever it is doing.
    for (const [i, c] of children.entries()) {
      if (i % 2 === 0) setTimeout(() => c.kill("SIGKILL"), 150 + i * 60);
    }
    await Promise.all(exited);
    // Right after the crash: leftover journals are operations in progress, not drift.
    const check = await runCli(["registry", "check", "--home", home]);
    expect(check.code, `${check.stdout}${check.stderr}`).toBe(0);
    // Touching each VM again finishes or rolls back what a killed process left.
    for (let i = 0; i < 12; i++) {
      const r = await runCli(["create", `vm-${i}`, "--home", home]);
      expect(r.code === 0 || /already has identifiers/.test(r.stderr), r.stderr).toBe(true);
    }
    for (let i = 0; i < 12; i++) {
      const p = vmPaths(home, `vm-${i}`);
      expect(existsSync(p.identifiers), p.name).toBe(true);
      expect(existsSync(p.journal), p.name).toBe(false);
      expect(existsSync(p.creating), p.name).toBe(false);
    }
    const after = await runCli(["registry", "check", "--home", home]);
    expect(after.code, `${after.stdout}${after.stderr}`).toBe(0);
    const doctor = await runCli(["doctor", "--home", home]);
    expect(doctor.code, doctor.stdout).toBe(0);
  }, 120_000);
});

describe("kill -9 during a bulk create", () => {
  it("every VM is complete or absent, and registry and files agree (`registry check` exits 0)", async () => {
    const home = path.join(dir, "bulk");
    const child = spawn(
      process.execPath,
      [CLI, "create", "b-{n}", "--count", "2500", "--home", home],
      {
        stdio: "ignore",
      },
    );
    const exited = new Promise((resolve) => child.on("close", resolve));
    // Killed once the first VMs are in place: a batch is being renamed, or the next one built.
    const vms = async () =>
      (await fs.readdir(home).catch(() => [])).filter((n) => !n.startsWith("."));
    while ((await vms()).length === 0) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGKILL");
    await exited;
    const made = await vms();
    expect(made.length).toBeGreaterThan(0);
    expect(made.length).toBeLessThan(2500);
    for (const vm of made) {
      // Complete: a valid identity and both guest files.
      const ids = JSON.parse(await fs.readFile(path.join(home, vm, "identifiers.json"), "utf8"));
      expect(ids.vm_uuid, vm).toMatch(/^[0-9a-f-]{36}$/);
      expect(existsSync(path.join(home, vm, "shared", "identity.env")), vm).toBe(true);
      expect(existsSync(path.join(home, vm, "shared", "set_identifiers.sh")), vm).toBe(true);
    }
    // The next command that opens the registry settles the dead batch.
    const check = await runCli(["registry", "check", "--home", home]);
    expect(check.code, `${check.stdout}${check.stderr}`).toBe(0);
    expect(check.stdout).toContain(`agree: ${made.length} VM(s)`);
    expect(await fs.readdir(path.join(home, ".glint", "batches"))).toEqual([]);
    expect(await fs.readdir(path.join(home, ".glint", "staging"))).toEqual([]);
    // Creation resumes: the rest of the names.
    const rest = Array.from(
      { length: 2500 },
      (_, i) => `b-${String(i + 1).padStart(4, "0")}`,
    ).filter((vm) => !made.includes(vm));
    const again = await runCli(["create", ...rest, "--home", home]);
    expect(again.code, again.stderr).toBe(0);
    expect(await vms()).toHaveLength(2500);
    const after = await runCli(["registry", "check", "--home", home]);
    expect(after.code, `${after.stdout}${after.stderr}`).toBe(0);
  }, 300_000);
});

describe("registry rebuild", () => {
  it("on a home of 1,000 VMs with planted duplicates, reports each one", async () => {
    const home = path.join(dir, "big");
    const all: SystemIdentifiers[] = [];
    // Drawn against each other: 1,000 random 24-bit MACs would otherwise
    // collide by chance about once in 30 runs, an unplanted duplicate.
    const drawn = new Set<string>();
    const used = { has: (value: string) => drawn.has(valueKey(value)) };
    for (let i = 0; i < 1000; i++) {
      const ids = applyPolicy(undefined, POLICIES.fresh, used);
      for (const value of Object.values(ids))
        if (typeof value === "string") drawn.add(valueKey(value));
      all.push(ids);
    }
    // Planted: vm-0500 gets vm-0001's MAC, vm-0900 vm-0002's machine-id as its
    // vm_uuid's bits (dashes and case do not hide it), vm-0999 vm-0003's serial.
    const v = (i: number) => all[i] as (typeof all)[number];
    all[500] = { ...v(500), mac_address: v(1).mac_address };
    const m = v(2).machine_id;
    const asUuid = `${m.slice(0, 8)}-${m.slice(8, 12)}-${m.slice(12, 16)}-${m.slice(16, 20)}-${m.slice(20)}`;
    all[900] = { ...v(900), vm_uuid: asUuid };
    all[999] = { ...v(999), cpu_serial: v(3).cpu_serial };
    const name = (i: number) => `vm-${String(i).padStart(4, "0")}`;
    for (const [i, ids] of all.entries()) {
      const p = vmPaths(home, name(i));
      await fs.mkdir(p.dir, { recursive: true });
      await writeIdentifiers(p, ids);
    }
    const r = await runCli(["registry", "rebuild", "--home", home, "--json"]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { duplicates: { field: string; vms: string[] }[] };
    expect(out.duplicates.map((d) => [d.field, d.vms.join(" ")])).toEqual([
      ["mac_address", "vm-0001 vm-0500"],
      ["machine_id", "vm-0002 vm-0900"],
      ["cpu_serial", "vm-0003 vm-0999"],
    ]);
    expect(r.stderr).toMatch(/3 value\(s\) are held twice; nothing was rebuilt/);
    // `registry check` reports them too.
    const check = await runCli(["registry", "check", "--home", home, "--json"]);
    expect(check.code).toBe(1);
    const drift = (JSON.parse(check.stdout) as { drift: { kind: string }[] }).drift;
    expect(drift.filter((d) => d.kind === "duplicate")).toHaveLength(3);
  }, 120_000);
});
