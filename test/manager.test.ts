/**
 * The manager's all-or-nothing regeneration: a failing preparation undoes
 * everything, a commit that stops halfway (or a killed process) leaves a
 * journal that the next operation finishes, and a half-created VM can be
 * created again.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { UuidManager } from "../src/manager.js";
import type { PreparedChange } from "../src/txn/change.js";
import { readJournal } from "../src/txn/journal.js";
import type { ResetSteps } from "../src/txn/steps.js";
import { vmPaths } from "../src/vm/layout.js";
import { macReplay } from "./support/random.js";
import { tempDir } from "./support/tmp.js";

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-manager-");
});

/** Steps that only record what happened, and can be told to fail. */
function recordingSteps(
  log: string[],
  fail: { prepare?: string; commit?: string } = {},
): ResetSteps {
  const prepare = (name: string) => async (): Promise<PreparedChange> => {
    if (fail.prepare === name) throw new Error(`${name} cannot be prepared`);
    log.push(`prepare ${name}`);
    return {
      async commit() {
        if (fail.commit === name) throw new Error(`${name} cannot be committed`);
        log.push(`commit ${name}`);
      },
      async abort() {
        log.push(`abort ${name}`);
      },
    };
  };
  // Every step applies, whatever the VM's config, so that all of them run.
  const step = (name: string) => ({
    appliesTo: () => true,
    describe: () => name,
    prepare: prepare(name),
  });
  return {
    uefi: step("uefi"),
    tpm: step("tpm"),
    overlay: step("overlay"),
    "guest-files": step("guest-files"),
  };
}

async function historyFiles(vm: string): Promise<string[]> {
  return (await fs.readdir(path.join(home, vm, "history")).catch(() => [])).filter((n) =>
    n.includes("_identifiers-"),
  );
}

describe("regeneration is all-or-nothing", () => {
  it("a step that fails to prepare leaves the VM exactly as before", async () => {
    const log: string[] = [];
    await new UuidManager({ home, steps: recordingSteps(log) }).generateFreshIdentifiers("vm");
    const before = await fs.readFile(path.join(home, "vm", "identifiers.json"), "utf8");
    const failing = new UuidManager({ home, steps: recordingSteps(log, { prepare: "tpm" }) });
    await expect(failing.nukeAndRegenerateAll("vm")).rejects.toThrow(/tpm cannot be prepared/);
    expect(await fs.readFile(path.join(home, "vm", "identifiers.json"), "utf8")).toBe(before);
    expect(log).toContain("abort uefi");
    expect(log).not.toContain("commit uefi");
    expect(existsSync(vmPaths(home, "vm").journal)).toBe(false);
    expect(await historyFiles("vm")).toEqual([]);
  });

  it("a commit that stops halfway is finished by the next operation on the VM", async () => {
    const log: string[] = [];
    const first = await new UuidManager({
      home,
      steps: recordingSteps(log),
    }).generateFreshIdentifiers("vm");
    const stopping = new UuidManager({ home, steps: recordingSteps(log, { commit: "overlay" }) });
    await expect(stopping.nukeAndRegenerateAll("vm")).rejects.toMatchObject({
      code: "interrupted",
      message: expect.stringMatching(/stopped halfway/),
    });
    // The identity is not switched yet, but the journal holds the new one.
    const still = JSON.parse(await fs.readFile(path.join(home, "vm", "identifiers.json"), "utf8"));
    expect(still.vm_uuid).toBe(first.identifiers.vm_uuid);
    const pending = await readJournal(vmPaths(home, "vm"));
    expect(pending?.policy).toBe("nuke");
    expect(pending?.identifiers.vm_uuid).not.toBe(first.identifiers.vm_uuid);

    log.length = 0;
    const healthy = new UuidManager({ home, steps: recordingSteps(log) });
    await healthy.createPostInstallScript("vm").catch(() => undefined);
    // uefi and tpm were committed before the stop: only the rest is done again.
    expect(log).toEqual([
      "prepare overlay",
      "prepare guest-files",
      "commit overlay",
      "commit guest-files",
    ]);
    const now = await healthy.getIdentifiers("vm");
    expect(now.vm_uuid).toBe(pending?.identifiers.vm_uuid);
    expect(existsSync(vmPaths(home, "vm").journal)).toBe(false);
  });

  it("values of an interrupted operation count as taken for other VMs", async () => {
    const log: string[] = [];
    await new UuidManager({ home, steps: recordingSteps(log) }).generateFreshIdentifiers("a");
    await expect(
      new UuidManager({
        home,
        steps: recordingSteps(log, { commit: "guest-files" }),
      }).regenerateBaseIdentifiers("a"),
    ).rejects.toThrow(/stopped halfway/);
    const pending = await readJournal(vmPaths(home, "a"));
    // Replay the pending MAC's bytes for the next VM: it must be drawn again.
    const replay = macReplay(pending?.identifiers.mac_address ?? "");
    const b = await new UuidManager({
      home,
      random: replay.random,
      steps: recordingSteps(log),
    }).generateFreshIdentifiers("b");
    expect(replay.replayed()).toBe(true);
    expect(b.identifiers.mac_address).not.toBe(pending?.identifiers.mac_address);
  });
});

describe("VM names and unfinished creates", () => {
  it("a VM may be called `store` (its lock does not collide with the store lock)", async () => {
    const r = await new UuidManager({ home, steps: {} }).generateFreshIdentifiers("store");
    expect(r.identifiers.generation).toBe(1);
  }, 10_000);

  it("a create killed after config.json was written is started again by the next create", async () => {
    const paths = vmPaths(home, "half");
    await fs.mkdir(paths.dir, { recursive: true });
    await fs.writeFile(path.join(paths.dir, ".creating"), "1\n");
    await fs.writeFile(paths.config, JSON.stringify({ firmware: "bios" }));
    const r = await new UuidManager({ home }).createVm("half", { memoryMb: 256 });
    expect(r.identifiers.generation).toBe(1);
    expect(JSON.parse(await fs.readFile(paths.config, "utf8")).memory_mb).toBe(256);
  });

  it("a VM whose identifiers.json went missing keeps its disks: create only gives it a new identity", async () => {
    const paths = vmPaths(home, "kept");
    await fs.mkdir(paths.dir, { recursive: true });
    await fs.writeFile(paths.config, JSON.stringify({ firmware: "bios", overlay: true }));
    await fs.writeFile(paths.overlay, "guest data");
    const m = new UuidManager({ home, steps: {} });
    await expect(m.createVm("kept", { diskSize: "8M" })).rejects.toThrow(/already exists/);
    const r = await m.createVm("kept");
    expect(r.identifiers.generation).toBe(1);
    expect(await fs.readFile(paths.overlay, "utf8")).toBe("guest data");
    expect(JSON.parse(await fs.readFile(paths.config, "utf8")).overlay).toBe(true);
  });

  it("a failed regeneration keeps the VM's values reserved", async () => {
    const log: string[] = [];
    const ok = await new UuidManager({ home, steps: recordingSteps(log) }).generateFreshIdentifiers(
      "keep",
    );
    // One manager (one cache): the failed `disk` run must leave the kept MAC reserved.
    const replay = macReplay(ok.identifiers.mac_address);
    const m = new UuidManager({
      home,
      random: replay.random,
      steps: recordingSteps(log, { prepare: "uefi" }),
    });
    await expect(m.regenerateDiskIdentifiers("keep")).rejects.toThrow(/cannot be prepared/);
    const b = await m.generateFreshIdentifiers("other");
    expect(replay.replayed()).toBe(true);
    expect(b.identifiers.mac_address).not.toBe(ok.identifiers.mac_address);
  });
});

describe("library entry point", () => {
  it("exports the seed's API", async () => {
    const lib = await import("../src/index.js");
    const m = lib.getUuidManager({ home });
    expect(m).toBeInstanceOf(lib.UuidManager);
    const { identifiers } = await m.generateFreshIdentifiers("lib", {});
    expect(lib.SystemIdentifiers.fromDict(lib.SystemIdentifiers.toDict(identifiers))).toEqual(
      identifiers,
    );
    const argv = m.applyIdentifiersToQemuCommand(["qemu-system-x86_64", "-m", "1G"], identifiers);
    expect(argv).toContain(identifiers.vm_uuid);
  });
});
