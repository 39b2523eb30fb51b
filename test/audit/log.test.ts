/**
 * The audit log's chain: every kind of tampering (an edited, rewritten,
 * deleted, reordered or truncated record) makes `glint audit verify` exit 1
 * naming the first bad seq; an untouched log verifies; appends refuse a log
 * whose tail was cut; an unfinished last line (a writer killed mid-append) is
 * cut off by the next append. Several records appended at once are chained
 * like single ones, and a writer killed before the head names their last one
 * leaves a log that verifies.
 */
import { promises as fs } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import {
  type AuditRecord,
  appendAudit,
  appendAuditMany,
  canonicalJson,
  currentActor,
  hashOf,
  newEntry,
  readAudit,
  verifyAudit,
} from "../../src/audit/index.js";
import { storePaths } from "../../src/vm/layout.js";
import { runCli } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
let file: string;

beforeEach(async () => {
  home = await tempDir("glint-audit-");
  file = storePaths(home).audit;
  const actor = currentActor("test");
  for (let i = 1; i <= 5; i++) {
    await appendAudit(home, newEntry(actor, `vm${i}`, "edit", { cpus: { old: i, new: i + 1 } }));
  }
});

async function lines(): Promise<string[]> {
  return (await fs.readFile(file, "utf8")).split("\n").filter((l) => l !== "");
}

async function writeLines(ls: string[], end = "\n"): Promise<void> {
  await fs.writeFile(file, ls.join("\n") + end);
}

/** `glint audit verify` must exit 1 naming `seq`. */
async function expectBadAt(seq: number): Promise<void> {
  const r = await runCli(["audit", "verify", "--home", home]);
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`at seq ${seq}:`));
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  const j = await runCli(["audit", "verify", "--json", "--home", home]);
  expect(j.code).toBe(1);
  expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, seq });
}

describe("glint audit verify", () => {
  it("an untouched log verifies: seqs 1..5, each prev the hash before it", async () => {
    const r = await runCli(["audit", "verify", "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("5 records");
    const records = await readAudit(home);
    expect(records.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(records[0]?.prev).toBe("0".repeat(64));
    for (let i = 1; i < records.length; i++) {
      expect(records[i]?.prev).toBe(records[i - 1]?.hash);
    }
    for (const rec of records) expect(hashOf(rec)).toBe(rec.hash);
  });

  it("an edited record (hash left alone) is named", async () => {
    const ls = await lines();
    ls[2] = (ls[2] ?? "").replace('"new":4', '"new":64');
    await writeLines(ls);
    await expectBadAt(3);
  });

  it("an edited record whose hash was recomputed is named (the next record's prev no longer matches)", async () => {
    const ls = await lines();
    const rec = JSON.parse(ls[1] ?? "") as AuditRecord;
    const forged = { ...rec, user: "mallory" };
    ls[1] = canonicalJson({ ...forged, hash: hashOf(forged) });
    await writeLines(ls);
    await expectBadAt(2);
  });

  it("a rewritten last record is named (the head names another hash)", async () => {
    const ls = await lines();
    const rec = JSON.parse(ls[4] ?? "") as AuditRecord;
    const forged = { ...rec, vm: "other" };
    ls[4] = canonicalJson({ ...forged, hash: hashOf(forged) });
    await writeLines(ls);
    await expectBadAt(5);
  });

  it("a deleted record is named", async () => {
    const ls = await lines();
    ls.splice(1, 1);
    await writeLines(ls);
    await expectBadAt(2);
  });

  it("reordered records are named", async () => {
    const ls = await lines();
    [ls[2], ls[3]] = [ls[3] ?? "", ls[2] ?? ""];
    await writeLines(ls);
    await expectBadAt(3);
  });

  it("a log truncated mid-record is named", async () => {
    const raw = await fs.readFile(file, "utf8");
    await fs.writeFile(file, raw.slice(0, raw.length - 40));
    await expectBadAt(5);
  });

  it("a log whose last records were cut off whole is named (the head remembers them)", async () => {
    const ls = await lines();
    await writeLines(ls.slice(0, 3));
    await expectBadAt(4);
    // ... and no further record is appended on top of it, which would hide that.
    await expect(appendAudit(home, newEntry(currentActor("t"), "x", "edit", {}))).rejects.toThrow(
      /truncated/,
    );
  });

  it("a record that is not JSON is named", async () => {
    const ls = await lines();
    ls[0] = "{not json";
    await writeLines(ls);
    await expectBadAt(1);
  });
});

describe("appending", () => {
  it("an unfinished last line (a writer killed mid-append) is cut off by the next append, and the chain holds", async () => {
    const raw = await fs.readFile(file, "utf8");
    await fs.writeFile(file, `${raw}{"changes":{},"comma`);
    expect((await verifyAudit(home)).ok).toBe(false);
    const rec = await appendAudit(home, newEntry(currentActor("t"), "x", "edit", {}));
    expect(rec.seq).toBe(6);
    expect(await verifyAudit(home)).toMatchObject({ ok: true, records: 6 });
  });

  it("an entry appended again by op_id (a recovery) is recorded once", async () => {
    const entry = newEntry(currentActor("t"), "x", "nuke", {});
    const a = await appendAudit(home, entry);
    const b = await appendAudit(home, entry, { idempotent: true });
    expect(b).toEqual(a);
    expect((await readAudit(home)).filter((r) => r.op_id === entry.op_id)).toHaveLength(1);
  });
});

describe("several records appended at once (a bulk create's)", () => {
  const entries = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      newEntry(currentActor("t"), `bulk-${i}`, "create", {
        vm_uuid: { old: null, new: `uuid-${i}` },
      }),
    );

  it("are chained in order, each line its record's canonical JSON, and the log verifies", async () => {
    const records = await appendAuditMany(home, entries(4));
    expect(records.map((r) => r.seq)).toEqual([6, 7, 8, 9]);
    const all = await readAudit(home);
    expect(all.slice(5)).toEqual(records);
    for (const [i, r] of all.entries()) {
      expect(r.hash).toBe(hashOf(r));
      if (i > 0) expect(r.prev).toBe(all[i - 1]?.hash);
    }
    expect((await lines()).slice(5)).toEqual(records.map((r) => canonicalJson(r)));
    expect(await verifyAudit(home)).toMatchObject({ ok: true, records: 9 });
    expect(JSON.parse(await fs.readFile(storePaths(home).auditHead, "utf8"))).toEqual({
      seq: 9,
      hash: records[3]?.hash,
    });
    expect(await appendAuditMany(home, [])).toEqual([]);
  });

  it("a writer killed after the append, before the head named the last record, leaves a log that verifies", async () => {
    const head = await fs.readFile(storePaths(home).auditHead, "utf8");
    await appendAuditMany(home, entries(3));
    // The head as such a writer leaves it: the old one, with the seq the batch ends at.
    const old = JSON.parse(head) as { seq: number; hash: string };
    await fs.writeFile(storePaths(home).auditHead, JSON.stringify({ ...old, upto: 8 }));
    expect(await verifyAudit(home)).toMatchObject({ ok: true, records: 8 });
    // Without `upto`, a head two records behind means records added by hand.
    await fs.writeFile(storePaths(home).auditHead, head);
    expect(await verifyAudit(home)).toMatchObject({ ok: false, seq: 6 });
    // Records beyond `upto` were not that append's.
    await fs.writeFile(storePaths(home).auditHead, JSON.stringify({ ...old, upto: 7 }));
    expect((await verifyAudit(home)).ok).toBe(false);
    // The next append brings the head up to date.
    await fs.writeFile(storePaths(home).auditHead, JSON.stringify({ ...old, upto: 8 }));
    await appendAudit(home, newEntry(currentActor("t"), "x", "edit", {}));
    expect(await verifyAudit(home)).toMatchObject({ ok: true, records: 9 });
  });
});
