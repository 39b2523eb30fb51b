/**
 * The per-VM checks `glint list` makes before it trusts the registry's index
 * (src/ops/vm-checks.ts): identifiers.json's mtime and size, and whether a
 * journal is there, the same from the worker thread as in line, window by
 * window, in name order.
 */
import { promises as fs, statSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type VmChecks, vmChecks } from "../../src/ops/vm-checks.js";
import { VM_FILES } from "../../src/vm/layout.js";
import { tempDir } from "../support/tmp.js";

let home: string;
const names = ["a", "b", "c", "d", "e"];

beforeAll(async () => {
  home = await tempDir("glint-vmchecks-");
  for (const [i, vm] of names.entries()) {
    await fs.mkdir(path.join(home, vm));
    // c has no identifiers.json; the others each a different size
    if (vm !== "c")
      await fs.writeFile(path.join(home, vm, VM_FILES.identifiers), "x".repeat(i + 1));
  }
  await fs.writeFile(path.join(home, "b", VM_FILES.journal), "{}");
  await fs.writeFile(path.join(home, "e", VM_FILES.journal), "{}");
});

async function collect(workerAbove: number, mainHelps = false): Promise<VmChecks[]> {
  const out: VmChecks[] = [];
  for await (const c of vmChecks(home, names, 2, { workerAbove, mainHelps })) out.push(c);
  return out;
}

describe("vmChecks", () => {
  it("gives each VM its identifiers.json stamp and journal, window by window", async () => {
    const windows = await collect(Number.POSITIVE_INFINITY);
    expect(windows.map((c) => c.by)).toEqual(["inline", "inline", "inline"]);
    expect(windows.map((c) => c.journals.length)).toEqual([2, 2, 1]);
    const sizes = windows.flatMap((c) => [...c.sizes]);
    const mtimes = windows.flatMap((c) => [...c.mtimes]);
    const journals = windows.flatMap((c) => [...c.journals]);
    expect(sizes).toEqual([1, 2, -1, 4, 5]);
    expect(journals).toEqual([0, 1, 0, 0, 1]);
    expect(mtimes[2]).toBe(-1);
    expect(mtimes[3]).toBe(statSync(path.join(home, "d", VM_FILES.identifiers)).mtimeMs);
  });

  it("a large home's checks run in a worker thread and agree with the checks in line", async () => {
    const inline = await collect(Number.POSITIVE_INFINITY);
    const worker = await collect(0);
    expect(worker.map((c) => c.by)).toEqual(["worker", "worker", "worker"]);
    const plain = (cs: VmChecks[]) =>
      cs.map((c) => ({ m: [...c.mtimes], s: [...c.sizes], j: [...c.journals] }));
    expect(plain(worker)).toEqual(plain(inline));
  });

  it("with this thread helping, each window is checked once, by one of the two, in order", async () => {
    const inline = await collect(Number.POSITIVE_INFINITY);
    const shared = await collect(0, true);
    // The worker takes a while to start: this thread claims the first window at least.
    expect(shared[0]?.by).toBe("inline");
    expect(shared).toHaveLength(inline.length);
    const plain = (cs: VmChecks[]) =>
      cs.map((c) => ({ m: [...c.mtimes], s: [...c.sizes], j: [...c.journals] }));
    expect(plain(shared)).toEqual(plain(inline));
  });

  it("a name that is no longer a directory counts as changed (-1), not as an error", async () => {
    // stat fails with ENOTDIR: list reads that VM's files, which say why
    await fs.writeFile(path.join(home, "f"), "");
    const out: VmChecks[] = [];
    for await (const c of vmChecks(home, ["f"], 2, { workerAbove: 0, mainHelps: false }))
      out.push(c);
    expect(out.map((c) => [c.by, [...c.sizes], [...c.journals]])).toEqual([["worker", [-1], [0]]]);
  });
});
