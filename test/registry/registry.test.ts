/**
 * The registry (SQLite): values are unique across homes sharing one
 * registry and across every generation; an existing home is imported on
 * first use; `registry check` finds drift and `registry rebuild` refuses on
 * duplicates; the MAC prefix warns at half use and refuses when full.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import {
  extraMacsOf,
  IDENTIFIER_FIELDS,
  type SystemIdentifiers,
} from "../../src/identity/model.js";
import { UuidManager } from "../../src/manager.js";
import { checkRegistry } from "../../src/registry/check.js";
import { writeHomeConfig } from "../../src/registry/config.js";
import { valueKey } from "../../src/vm/registry.js";
import { streamRandom } from "../support/random.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
beforeEach(async () => {
  dir = await tempDir("glint-registry-");
});

const keys = (ids: SystemIdentifiers) => IDENTIFIER_FIELDS.map((f) => valueKey(ids[f]));

function manager(home: string, options: ConstructorParameters<typeof UuidManager>[0] = {}) {
  return new UuidManager({ home: path.join(dir, home), steps: {}, ...options });
}

describe("one registry shared by two homes", () => {
  it("a forced collision through the same random stream in the other home is drawn again", async () => {
    const registry = path.join(dir, "shared.db");
    const same = () => streamRandom(new Uint8Array(0), "same");
    const a = manager("host-a", { registry, random: same() });
    const first = (await a.generateFreshIdentifiers("vm")).identifiers;
    const b = manager("host-b", { registry, random: same() });
    const second = (await b.generateFreshIdentifiers("vm")).identifiers;
    // The stream replays host-a's values first: every one of them was refused.
    for (const k of keys(second)) expect(keys(first)).not.toContain(k);
    // Without the shared registry the same stream gives the same values.
    const alone = manager("host-c", { random: same() });
    expect((await alone.generateFreshIdentifiers("vm")).identifiers.vm_uuid).toBe(first.vm_uuid);
    await Promise.all([a.close(), b.close(), alone.close()]);
  });

  it("a value in history is never issued again", async () => {
    const m = manager("h", { random: streamRandom(new Uint8Array(0), "history") });
    const first = (await m.generateFreshIdentifiers("a")).identifiers;
    await m.regenerateBaseIdentifiers("a");
    // A new VM drawing from the same stream meets a's first identity, now in history/.
    const other = manager("h", { random: streamRandom(new Uint8Array(0), "history") });
    const b = (await other.generateFreshIdentifiers("b")).identifiers;
    for (const k of keys(b)) expect(keys(first)).not.toContain(k);
    await Promise.all([m.close(), other.close()]);
  });
});

describe("migration", () => {
  it("an existing home without a registry is imported on first use, history included", async () => {
    const m = manager("old", { random: streamRandom(new Uint8Array(0), "old") });
    const first = (await m.generateFreshIdentifiers("a")).identifiers;
    await m.regenerateBaseIdentifiers("a");
    await m.close();
    // As a home made before the registry: no registry.db.
    const db = path.join(dir, "old", ".glint", "registry.db");
    for (const f of [db, `${db}-wal`, `${db}-shm`]) await fs.rm(f, { force: true });
    const notices: string[] = [];
    const again = manager("old", {
      random: streamRandom(new Uint8Array(0), "old"),
      onNotice: (n) => notices.push(n),
    });
    const b = (await again.generateFreshIdentifiers("b")).identifiers;
    for (const k of keys(b)) expect(keys(first)).not.toContain(k);
    const report = await checkRegistry(await again.registry());
    expect(report.drift).toEqual([]);
    expect(report.values).toBe(3 * IDENTIFIER_FIELDS.length);
    expect(notices).toEqual([]);
    await again.close();
  });
});

describe("registry check", () => {
  it("reports a value missing from the registry and an orphan reservation", async () => {
    const m = manager("h");
    await m.generateFreshIdentifiers("a");
    await m.generateFreshIdentifiers("b");
    const reg = await m.registry();
    expect((await checkRegistry(reg)).drift).toEqual([]);
    // A reservation whose operation is gone, and a row that went missing.
    const ids = JSON.parse(await fs.readFile(path.join(dir, "h", "b", "identifiers.json"), "utf8"));
    const rows = (await reg.rows()).filter((r) => !(r.vm === "b" && r.field === "cpu_serial"));
    await reg.replaceRows([
      ...rows,
      {
        ...(rows[0] as (typeof rows)[number]),
        key: "ffffffffffff4fffbfffffffffffffff",
        value: "x",
        vm: "a",
        state: "reserved",
      },
    ]);
    const drift = (await checkRegistry(reg)).drift;
    expect(drift.map((d) => [d.kind, d.vms.join()])).toEqual([
      ["orphan", "a"],
      ["missing", "b"],
    ]);
    expect(drift[1]?.value).toBe(ids.cpu_serial);
    // The next command on a settles its orphan reservation.
    await m.createPostInstallScript("a");
    expect((await checkRegistry(reg)).drift.map((d) => d.kind)).toEqual(["missing"]);
    await m.close();
  });
});

describe("the MAC prefix", () => {
  it("draws under the home's prefix, warns above half use and refuses when exhausted", async () => {
    const home = path.join(dir, "tiny");
    await fs.mkdir(home);
    // 5 octets: 256 addresses.
    await writeHomeConfig(home, { mac_prefix: "0a:00:00:00:00" });
    const notices: string[] = [];
    const m = manager("tiny", { onNotice: (n) => notices.push(n) });
    const macs = new Set<string>();
    for (let i = 0; i < 256; i++) {
      macs.add((await m.generateFreshIdentifiers(`vm${i}`)).identifiers.mac_address);
    }
    expect(macs.size).toBe(256);
    for (const mac of macs) expect(mac).toMatch(/^0a:00:00:00:00:[0-9a-f]{2}$/);
    expect(notices.some((n) => /MAC prefix 0a:00:00:00:00 is 5\d% used/.test(n))).toBe(true);
    await expect(m.generateFreshIdentifiers("one-more")).rejects.toMatchObject({
      code: "registry",
      details: { reason: "exhausted" },
      message: expect.stringMatching(/MAC prefix 0a:00:00:00:00 is exhausted/),
    });
    await expect(fs.access(path.join(home, "one-more", "identifiers.json"))).rejects.toThrow();
    await m.close();
  }, 120_000);

  it("a VM's template prefix: its extra MACs, regen and nuke draw under it, and its use warns and exhausts", async () => {
    const prefix = "0a:00:00:00:01"; // 256 addresses
    const under = new RegExp(`^${prefix}:[0-9a-f]{2}$`);
    const registry = path.join(dir, "shared.db");
    const notices: string[] = [];
    const m = manager("tmpl", { registry, onNotice: (n) => notices.push(n) });
    await m.saveTemplate("tiny", { schema_version: 1, mac_prefix: prefix });
    await m.createVm("t1", { template: "tiny", nics: 2 });
    const macsOf = async () => {
      const ids = await m.getIdentifiers("t1");
      return [ids.mac_address, ...extraMacsOf(ids)];
    };
    const created = await macsOf();
    expect(created).toHaveLength(2);
    for (const mac of created) expect(mac).toMatch(under);
    // Extra MACs drawn later (edit --nics; a run's extra NICs) keep the template's prefix.
    await m.editVm("t1", { nics: 4 });
    const edited = await macsOf();
    expect(edited).toHaveLength(4);
    for (const mac of edited) expect(mac).toMatch(under);
    await m.qemuArgs("t1", ["-nic", "user,model=e1000"], { drawMacs: true });
    for (const mac of await macsOf()) expect(mac).toMatch(under);
    for (const regen of [
      () => m.regenerateBaseIdentifiers("t1"),
      () => m.nukeAndRegenerateAll("t1"),
    ]) {
      const before = await macsOf();
      await regen();
      const after = await macsOf();
      expect(after.length).toBeGreaterThan(1);
      for (const mac of after) expect(mac).toMatch(under);
      for (const mac of after) expect(before).not.toContain(mac);
    }
    expect(notices).toEqual([]);
    // Another home sharing the registry fills the prefix past half: the VM's next draw warns.
    const other = path.join(dir, "other");
    await fs.mkdir(other);
    await writeHomeConfig(other, { mac_prefix: prefix });
    const o = manager("other", { registry });
    for (let i = 0; i < 130; i++) await o.generateFreshIdentifiers(`o${i}`);
    await m.editVm("t1", { nics: 6 });
    expect(notices.some((n) => new RegExp(`MAC prefix ${prefix} is 5\\d% used`).test(n))).toBe(
      true,
    );
    // Full: the VM's next extra MAC, and its next nuke, are refused, naming the prefix.
    for (let i = 130; ; i++) {
      const r = await o.generateFreshIdentifiers(`o${i}`).catch((e: unknown) => e);
      if (r instanceof Error) break;
    }
    const exhausted = {
      code: "registry",
      details: { reason: "exhausted" },
      message: expect.stringMatching(new RegExp(`MAC prefix ${prefix} is exhausted`)),
    };
    const before = await m.getIdentifiers("t1");
    await expect(
      m.qemuArgs("t1", ["-nic", "user", "-nic", "user"], { drawMacs: true }),
    ).rejects.toMatchObject(exhausted);
    await expect(m.nukeAndRegenerateAll("t1")).rejects.toMatchObject(exhausted);
    expect(await m.getIdentifiers("t1")).toEqual(before);
    await o.close();
    await m.close();
  }, 300_000);
});

describe("the VM index, a page at a time", () => {
  it("gives every indexed VM once, in name order, across pages", async () => {
    const m = manager("paged");
    const names = ["b-1", "a", "b", "a-b", "ab", "z9", "c0"];
    await Promise.all(names.map((vm) => m.createBatched(vm)));
    const registry = await m.registry();
    const all = await registry.vmIndex();
    for (const pageSize of [1, 2, 3, 100]) {
      const seen: string[] = [];
      for await (const page of registry.vmIndexPages(30_000, pageSize)) {
        expect(page.length).toBeGreaterThan(0);
        expect(page.length).toBeLessThanOrEqual(pageSize);
        for (const e of page) {
          seen.push(e.vm);
          expect(e).toEqual(all.get(e.vm));
        }
      }
      expect(seen).toEqual([...names].sort());
    }
    // The rows of a range of VMs, by VM.
    const rows = await registry.rowsOfVms("a-b", "b");
    expect([...rows.keys()]).toEqual(["a-b", "ab", "b"]);
    for (const list of rows.values()) expect(list).toHaveLength(IDENTIFIER_FIELDS.length);
    await m.close();
  });
});
