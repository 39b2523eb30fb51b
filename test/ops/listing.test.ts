/**
 * `glint list` on a home large enough that each VM's checks run in a worker
 * thread (src/ops/vm-checks.ts): every VM comes once, in name order, from
 * the registry's index, except a VM whose identifiers.json was edited by hand
 * and one with an operation's journal, which are read from their files.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { UuidManager } from "../../src/manager.js";
import type { VmListing } from "../../src/ops/listing.js";
import { WORKER_ABOVE } from "../../src/ops/vm-checks.js";
import { VM_FILES, vmPaths } from "../../src/vm/layout.js";
import { leaveJournal } from "../support/journal.js";
import { tempDir } from "../support/tmp.js";

const COUNT = WORKER_ABOVE + 200;
let home: string;
let names: string[];

beforeAll(async () => {
  home = path.join(await tempDir("glint-listing-"), "home");
  const m = new UuidManager({ home, steps: {} });
  names = Array.from({ length: COUNT }, (_, i) => `vm-${String(i).padStart(5, "0")}`);
  for (let i = 0; i < names.length; i += 1000)
    await Promise.all(names.slice(i, i + 1000).map((vm) => m.createBatched(vm)));
  await m.close();
}, 300_000);

async function listAll(): Promise<VmListing[]> {
  const m = new UuidManager({ home, steps: {} });
  const out: VmListing[] = [];
  try {
    await m.eachListing((l) => out.push(l));
  } finally {
    await m.close();
  }
  return out;
}

describe("list on a large home", () => {
  it("reads a hand-edited VM and an interrupted one from their files, the rest from the index", async () => {
    const edited = names[WORKER_ABOVE + 7] ?? "";
    const interrupted = names[3000] ?? "";
    const file = path.join(home, edited, VM_FILES.identifiers);
    const ids = JSON.parse(await fs.readFile(file, "utf8")) as Record<string, unknown>;
    ids.cpu_serial = "CPUHANDEDITED1";
    await fs.writeFile(file, `${JSON.stringify(ids, null, 2)}\n`);
    await leaveJournal(vmPaths(home, interrupted), "nuke", "committing");

    const listed = await listAll();
    expect(listed.map((l) => l.vm)).toEqual(names);
    const byName = new Map(listed.map((l) => [l.vm, l]));
    expect(JSON.parse(byName.get(edited)?.json ?? "{}").cpu_serial).toBe("CPUHANDEDITED1");
    expect(byName.get(interrupted)?.state).toBe("interrupted");
    expect(listed.filter((l) => l.state !== "stopped").map((l) => l.vm)).toEqual([interrupted]);
    // Only the interrupted VM is unusable until the next operation recovers it.
    const unusable = listed.filter((l) => l.json === undefined);
    expect(unusable.map((l) => l.vm)).toEqual([interrupted]);
    expect(unusable[0]?.error).toMatch(/interrupted `glint nuke`/);
  });
});
