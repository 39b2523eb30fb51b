/**
 * Regression tests for the transaction engine (reliability issue): a failure
 * before the commit leaves no journal and no phantom history; a leftover
 * `.creating` marker never wipes a finished VM; recovery says what it did
 * and refuses duplicated values; the uniqueness scan sees a consistent
 * snapshot while other processes finish their operations.
 */
import { execFile } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeEach, describe, expect, it } from "vitest";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/model.js";
import { UuidManager } from "../../src/manager.js";
import { readJournal } from "../../src/txn/journal.js";
import { vmPaths } from "../../src/vm/layout.js";
import { valueKey } from "../../src/vm/registry.js";
import { leaveJournal } from "../support/journal.js";
import { ROOT } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

const run = promisify(execFile);

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-engine-");
});

async function readIds(vm: string): Promise<SystemIdentifiers> {
  return JSON.parse(await fs.readFile(vmPaths(home, vm).identifiers, "utf8"));
}

async function historyNames(vm: string): Promise<string[]> {
  return (await fs.readdir(vmPaths(home, vm).history).catch(() => [] as string[])).sort();
}

describe("a failure before the commit changes nothing", () => {
  it("a broken config.json: no journal, no history entry, and a later command changes nothing", async () => {
    const notices: string[] = [];
    const m = new UuidManager({ home, onNotice: (n) => notices.push(n) });
    await m.createVm("v");
    const before = await fs.readFile(vmPaths(home, "v").identifiers, "utf8");
    const historyBefore = await historyNames("v");
    const config = vmPaths(home, "v").config;
    await fs.writeFile(config, '{"firmware": "nonsense"}');
    await expect(m.nukeAndRegenerateAll("v")).rejects.toMatchObject({ code: "invalid-file" });
    expect(existsSync(vmPaths(home, "v").journal)).toBe(false);
    expect(await historyNames("v")).toEqual(historyBefore);
    // Fixed config: writing the script must not complete a nuke behind the user's back.
    await fs.writeFile(config, "{}");
    await m.createPostInstallScript("v");
    expect(await fs.readFile(vmPaths(home, "v").identifiers, "utf8")).toBe(before);
    expect(notices).toEqual([]);
  });

  it("a step that fails to prepare leaves no phantom history entry", async () => {
    const m = new UuidManager({ home });
    await m.createVm("v");
    const historyBefore = await historyNames("v");
    const failing = new UuidManager({
      home,
      steps: {
        "guest-files": {
          appliesTo: () => true,
          describe: () => "x",
          prepare: async () => {
            throw new Error("disk full while preparing");
          },
        },
      },
    });
    await expect(failing.regenerateBaseIdentifiers("v")).rejects.toThrow(/disk full/);
    expect(await historyNames("v")).toEqual(historyBefore);
    expect(existsSync(vmPaths(home, "v").journal)).toBe(false);
  });
});

describe("interrupted operations", () => {
  it("a reserved (never committed) operation is rolled back, and the command says so", async () => {
    const notices: string[] = [];
    const m = new UuidManager({ home, onNotice: (n) => notices.push(n) });
    const { identifiers } = await m.createVm("v");
    await leaveJournal(vmPaths(home, "v"), "nuke", "reserved");
    await m.createPostInstallScript("v");
    expect((await readIds("v")).vm_uuid).toBe(identifiers.vm_uuid);
    expect(existsSync(vmPaths(home, "v").journal)).toBe(false);
    expect(notices.join("\n")).toMatch(
      /interrupted `glint nuke` of "v" had changed nothing; it was rolled back/,
    );
  });

  it("a committing operation is finished by the next command, which names it", async () => {
    const notices: string[] = [];
    const m = new UuidManager({ home, onNotice: (n) => notices.push(n) });
    await m.createVm("v");
    const other = await leaveJournal(vmPaths(home, "v"), "base", "committing");
    await m.createPostInstallScript("v");
    expect((await readIds("v")).vm_uuid).toBe(other.identifiers.vm_uuid);
    expect(notices.join("\n")).toMatch(/finished the interrupted `glint regen base` of "v" first/);
  });

  it("finishing an interrupted create removes its .creating marker, so the VM is never wiped later", async () => {
    const m = new UuidManager({ home });
    const paths = vmPaths(home, "x");
    const { identifiers } = await m.createVm("x", { diskSize: "1M" });
    await m.regenerateDiskIdentifiers("x");
    // The state a `glint create` killed after its journal leaves behind.
    await fs.writeFile(paths.creating, "12345\n");
    await fs.rm(paths.identifiers);
    await leaveJournal(paths, "fresh", "committing", { identifiers });
    await m.createPostInstallScript("x");
    expect(existsSync(paths.creating)).toBe(false);
    // Later the identity is lost again; create must keep the disk and history.
    await fs.rm(paths.identifiers);
    await m.createVm("x");
    expect(existsSync(paths.base)).toBe(true);
    expect((await historyNames("x")).length).toBeGreaterThan(0);
  });

  it("a leftover .creating marker beside history/ never wipes the VM", async () => {
    const m = new UuidManager({ home });
    const paths = vmPaths(home, "y");
    await m.createVm("y", { diskSize: "1M" });
    await m.regenerateBaseIdentifiers("y");
    await fs.writeFile(paths.creating, "12345\n");
    await fs.rm(paths.identifiers);
    await m.createVm("y");
    expect(existsSync(paths.base)).toBe(true);
    expect(existsSync(paths.config)).toBe(true);
  });

  it("a journal copied with its VM directory is refused: its values belong to the original", async () => {
    const m = new UuidManager({ home });
    await m.createVm("a");
    const fresh = await leaveJournal(vmPaths(home, "a"), "base", "committing");
    await fs.cp(vmPaths(home, "a").dir, vmPaths(home, "b").dir, { recursive: true });
    // Neither copy of the operation may hand out values the other one holds.
    await expect(m.createPostInstallScript("b")).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/also held by VM "a" \(was the VM directory copied\?\)/),
    });
    await expect(m.createPostInstallScript("a")).rejects.toMatchObject({ code: "conflict" });
    expect(await readJournal(vmPaths(home, "b"))).toBeDefined();
    // Dropping the copy's journal (keeping b's current identity) lets a finish.
    await fs.rm(vmPaths(home, "b").journal);
    await m.createPostInstallScript("a");
    expect((await readIds("a")).vm_uuid).toBe(fresh.identifiers.vm_uuid);
  });
});

describe("values in use are unique", () => {
  it("an identity copied from another VM is refused by every command that uses it, and listed by duplicates()", async () => {
    const m = new UuidManager({ home });
    await m.createVm("a");
    await m.createVm("b");
    await fs.copyFile(vmPaths(home, "a").identifiers, vmPaths(home, "b").identifiers);
    await expect(m.qemuArgs("b")).rejects.toThrow(/is also held by VM "a"/);
    await expect(m.run("b", { dryRun: true })).rejects.toMatchObject({ code: "conflict" });
    await expect(m.writeSeedIso("b")).rejects.toMatchObject({ code: "conflict" });
    const dups = await m.duplicates();
    expect(dups.length).toBe(IDENTIFIER_FIELDS.length);
    expect(dups.every((d) => d.vms.join() === "a,b")).toBe(true);
  });

  it("32 concurrent creates with the same replayed random stream never share a value", async () => {
    // Every process draws the same sequence; only the uniqueness scan keeps them apart.
    const child = `
      import { createHash } from "node:crypto";
      const { UuidManager } = await import(${JSON.stringify(path.join(ROOT, "dist", "manager.js"))});
      let counter = 0, pool = Buffer.alloc(0), pos = 0;
      const random = (n) => Uint8Array.from({ length: n }, () => {
        if (pos >= pool.length) { pool = createHash("sha256").update("same:" + counter++).digest(); pos = 0; }
        return pool[pos++];
      });
      const m = new UuidManager({ home: process.argv[1], random, steps: {} });
      for (const vm of process.argv.slice(2)) await m.generateFreshIdentifiers(vm);
    `;
    const procs = Array.from({ length: 8 }, (_, p) =>
      run(process.execPath, [
        "--input-type=module",
        "-e",
        child,
        home,
        ...Array.from({ length: 4 }, (_, i) => `vm-${p}-${i}`),
      ]),
    );
    await Promise.all(procs);
    const seen = new Map<string, string>();
    const vms = (await fs.readdir(home)).filter((n) => n.startsWith("vm-"));
    expect(vms.length).toBe(32);
    for (const vm of vms) {
      const ids = await readIds(vm);
      for (const f of IDENTIFIER_FIELDS) {
        const key = valueKey(ids[f]);
        expect(seen.get(key), `${vm}.${f} also in ${seen.get(key)}`).toBeUndefined();
        seen.set(key, vm);
      }
    }
  });
});
