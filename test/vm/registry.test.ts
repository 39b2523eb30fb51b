/**
 * Store-wide uniqueness (UsedValues) and the manager drawing through it:
 * a value held by one VM is never handed to another, even when the random
 * source replays it and even across manager instances (processes).
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { canonicalHex } from "../../src/identity/formats.js";
import {
  IDENTIFIER_FIELDS,
  type SystemIdentifiers,
  uuidV4FromBytes,
} from "../../src/identity/model.js";
import { UuidManager } from "../../src/manager.js";
import { UsedValues, valueKey } from "../../src/vm/registry.js";
import { runCli } from "../support/cli.js";
import { FIXTURES } from "../support/paths.js";
import { queueRandom } from "../support/random.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-registry-");
});

function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(":").slice(3), (o) => Number.parseInt(o, 16));
}

function uuidBytes(uuid: string): Uint8Array {
  return Buffer.from(canonicalHex(uuid), "hex");
}

/** A random source that answers the first request of `n` bytes with `replay`, then crypto. */
function replayOnce(
  n: number,
  replay: Uint8Array,
): { random: (k: number) => Uint8Array; asked: number[] } {
  const asked: number[] = [];
  let done = false;
  return {
    asked,
    random: (k) => {
      asked.push(k);
      if (k === n && !done) {
        done = true;
        return Uint8Array.from(replay);
      }
      return randomBytes(k);
    },
  };
}

function allKeys(ids: SystemIdentifiers): string[] {
  return IDENTIFIER_FIELDS.map((f) => valueKey(ids[f]));
}

describe("valueKey", () => {
  it("compares UUIDs and machine-ids without dashes or case", () => {
    const u = "6f1c2a9e-3b7d-4e52-9a1f-0c8d7e6b5a43";
    expect(valueKey(u)).toBe(valueKey(canonicalHex(u)));
    expect(valueKey(u.toUpperCase())).toBe(valueKey(u));
    expect(valueKey("52:54:00:AA:bb:cc")).toBe("52:54:00:aa:bb:cc");
    expect(valueKey("CPU1234ABCD")).toBe(valueKey("cpu1234abcd"));
    expect(valueKey(u)).not.toBe(valueKey("6f1c2a9e-3b7d-4e52-9a1f-0c8d7e6b5a44"));
  });
});

describe("UsedValues", () => {
  it("reserves every identifier of every VM in the home, in any spelling", async () => {
    const m = new UuidManager({ home });
    const a = (await m.generateFreshIdentifiers("a")).identifiers;
    const b = (await m.generateFreshIdentifiers("b")).identifiers;
    const used = new UsedValues(home);
    await used.refresh();
    expect(used.size).toBe(2 * IDENTIFIER_FIELDS.length);
    for (const ids of [a, b]) {
      for (const f of IDENTIFIER_FIELDS) {
        expect(used.has(ids[f]), f).toBe(true);
        expect(used.has(ids[f].toUpperCase()), f).toBe(true);
      }
      expect(used.has(canonicalHex(ids.vm_uuid))).toBe(true);
    }
    // A value nobody holds is free.
    const fresh = uuidV4FromBytes(randomBytes(16));
    expect(used.has(fresh)).toBe([...allKeys(a), ...allKeys(b)].includes(valueKey(fresh)));
  });

  it("reserves values of a VM whose identifiers.json is valid JSON but an invalid identity", async () => {
    await fs.mkdir(path.join(home, "old"));
    await fs.copyFile(
      path.join(FIXTURES, "seed-invalid-machine-id.json"),
      path.join(home, "old", "identifiers.json"),
    );
    const used = new UsedValues(home);
    await used.refresh();
    expect(used.has("550e8400-e29b-41d4-a716-446655440000")).toBe(true);
    expect(used.has("52:54:00:12:34:56")).toBe(true);
    expect(used.has("a1b2c3d4e5f6789012345678901234567890abcd")).toBe(true);
  });

  it("skips unreadable files and directories that are not VMs", async () => {
    await fs.mkdir(path.join(home, "broken"));
    await fs.writeFile(path.join(home, "broken", "identifiers.json"), "{ truncated");
    await fs.mkdir(path.join(home, "Not-A-Vm"));
    await fs.copyFile(
      path.join(FIXTURES, "seed-identifiers.json"),
      path.join(home, "Not-A-Vm", "identifiers.json"),
    );
    const used = new UsedValues(home);
    await used.refresh();
    expect(used.size).toBe(0);
    // A missing home is an empty store.
    const none = new UsedValues(path.join(home, "missing"));
    await none.refresh();
    expect(none.size).toBe(0);
  });

  it("notices VMs created by another manager (process) after its first scan", async () => {
    const used = new UsedValues(home);
    await used.refresh();
    expect(used.size).toBe(0);
    const other = new UuidManager({ home });
    const a = (await other.generateFreshIdentifiers("a")).identifiers;
    await used.refresh();
    expect(used.has(a.mac_address)).toBe(true);
    // ...and regenerations by another manager (generation token changes).
    const b = (await other.regenerateBaseIdentifiers("a")).identifiers;
    await used.refresh();
    expect(used.has(b.mac_address)).toBe(true);
    expect(used.has(a.mac_address)).toBe(false);
  });

  it("commit moves a VM's values from its previous identity to the new one", async () => {
    const m = new UuidManager({ home });
    const first = (await m.generateFreshIdentifiers("a")).identifiers;
    const next = (await m.regenerateDiskIdentifiers("a")).identifiers;
    const used = new UsedValues(home);
    await used.refresh();
    expect(used.has(first.vm_uuid)).toBe(true); // kept by disk
    expect(used.has(first.disk_uuid)).toBe(false); // given up
    expect(used.has(next.disk_uuid)).toBe(true);
    expect(used.size).toBe(IDENTIFIER_FIELDS.length);
  });
});

describe("UuidManager draws unique values across VMs", () => {
  it("a random source replaying another VM's MAC bytes yields a different MAC", async () => {
    const first = (await new UuidManager({ home }).generateFreshIdentifiers("vm1")).identifiers;
    const { random, asked } = replayOnce(3, macBytes(first.mac_address));
    // A new manager: it has to find vm1's MAC by scanning the home.
    const second = (await new UuidManager({ home, random }).generateFreshIdentifiers("vm2"))
      .identifiers;
    expect(second.mac_address).not.toBe(first.mac_address);
    // The replayed MAC was drawn, rejected, and drawn again.
    expect(asked.filter((n) => n === 3)).toHaveLength(2);
    const onDisk = JSON.parse(
      await fs.readFile(path.join(home, "vm2", "identifiers.json"), "utf8"),
    );
    expect(onDisk.mac_address).toBe(second.mac_address);
  });

  it("replaying a VM's MAC made by another process (the CLI) is also caught", async () => {
    const r = await runCli(["create", "cli-vm", "--home", home, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const first = (JSON.parse(r.stdout) as { identifiers: SystemIdentifiers }).identifiers;
    const { random, asked } = replayOnce(3, macBytes(first.mac_address));
    const second = (await new UuidManager({ home, random }).generateFreshIdentifiers("api-vm"))
      .identifiers;
    expect(second.mac_address).not.toBe(first.mac_address);
    expect(asked.filter((n) => n === 3)).toHaveLength(2);
  });

  it("a replayed vm_uuid, or a machine_id with another VM's UUID bits, is redrawn", async () => {
    const first = (await new UuidManager({ home }).generateFreshIdentifiers("vm1")).identifiers;
    const { random, calls, remaining } = queueRandom([
      uuidBytes(first.vm_uuid), // vm_uuid: taken by vm1
      randomBytes(16), // vm_uuid: free
      uuidBytes(first.disk_uuid), // machine_id: the bits of vm1's disk_uuid
    ]);
    const second = (await new UuidManager({ home, random }).generateFreshIdentifiers("vm2"))
      .identifiers;
    expect(second.vm_uuid).not.toBe(first.vm_uuid);
    expect(canonicalHex(second.machine_id)).not.toBe(canonicalHex(first.disk_uuid));
    expect(remaining()).toBe(0);
    // vm_uuid twice, machine_id twice: both replays were rejected and redrawn.
    expect(calls.slice(0, 4)).toEqual([16, 16, 16, 16]);
    expect(calls[4]).toBe(3);
    const k1 = new Set(allKeys(first));
    for (const k of allKeys(second)) expect(k1.has(k)).toBe(false);
  });

  it("an exhausted random source fails cleanly: nothing written, lock released", async () => {
    const stuck = new UuidManager({ home, random: (n) => new Uint8Array(n).fill(0x33) });
    // A constant source gives machine_id the same bits as vm_uuid, forever.
    await expect(stuck.generateFreshIdentifiers("c1")).rejects.toThrow(
      /could not draw a unique machine_id/,
    );
    await expect(fs.access(path.join(home, "c1", "identifiers.json"))).rejects.toThrow();
    // Neither the VM lock nor the store lock is left held.
    const ok = await new UuidManager({ home }).generateFreshIdentifiers("c1");
    expect(ok.identifiers.generation).toBe(1);
    expect(
      (await fs.readdir(path.join(home, ".glint"), { recursive: true })).filter((n) =>
        n.endsWith(".lock"),
      ),
    ).toEqual([]);
  });
});

describe("a consistent scan while another process finishes its operation", () => {
  it("a VM that renames its identity and drops its journal between the scan's two reads stays visible", async () => {
    const { vi } = await import("vitest");
    const nodeFs = (await import("node:fs")).promises;
    const drawn = await new UuidManager({ home: `${home}-src` }).generateFreshIdentifiers("x");
    await fs.rm(`${home}-src`, { recursive: true, force: true });
    const dir = path.join(home, "x");
    await fs.mkdir(dir, { recursive: true });
    // x is mid-create: its values are only in its journal.
    await fs.writeFile(
      path.join(dir, ".pending.json"),
      JSON.stringify({ identifiers: drawn.identifiers }),
    );
    // The scan opens each file (without following links) before reading it.
    const original = nodeFs.open.bind(nodeFs);
    let finished = false;
    const spy = vi.spyOn(nodeFs, "open").mockImplementation((async (
      file: Parameters<typeof original>[0],
      flags?: Parameters<typeof original>[1],
    ) => {
      const inX = typeof file === "string" && path.dirname(file) === dir;
      try {
        return await original(file, flags);
      } finally {
        // Right after the scan's first read of x, x finishes its operation.
        if (inX && !finished) {
          finished = true;
          await fs.writeFile(path.join(dir, "identifiers.json"), JSON.stringify(drawn.identifiers));
          await fs.rm(path.join(dir, ".pending.json"));
        }
      }
    }) as typeof nodeFs.open);
    try {
      const used = new UsedValues(home);
      await used.refresh();
      expect(finished).toBe(true);
      for (const f of IDENTIFIER_FIELDS) expect(used.has(drawn.identifiers[f]), f).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });
});
