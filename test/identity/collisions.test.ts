/**
 * Forced collisions: a deterministic RandomSource first reproduces a value
 * that is taken (in the store, or by another field of the same identity);
 * applyPolicy must notice, report it and draw again.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import { canonicalHex } from "../../src/identity/formats.js";
import { newSerial, newUuidV4, SERIAL_LENGTH } from "../../src/identity/generate.js";
import {
  IDENTIFIER_FIELDS,
  parseIdentifiers,
  type SystemIdentifiers,
  uuidV4FromBytes,
  type ValueField,
} from "../../src/identity/model.js";
import { POLICIES } from "../../src/identity/policies.js";
import { applyPolicy, type ValueSet } from "../../src/identity/regenerate.js";
import { fixture } from "../support/paths.js";
import { queueRandom } from "../support/random.js";

const none: ValueSet = { has: () => false };

function keysOf(ids: SystemIdentifiers): string[] {
  return IDENTIFIER_FIELDS.map((f) => canonicalHex(ids[f]));
}

function expectNoDuplicates(ids: SystemIdentifiers): void {
  const keys = keysOf(ids);
  expect(new Set(keys).size).toBe(keys.length);
}

function setOf(values: readonly string[]): ValueSet & { asked: string[] } {
  const keys = new Set(values.map(canonicalHex));
  const asked: string[] = [];
  return {
    asked,
    has: (v) => {
      asked.push(v);
      return keys.has(canonicalHex(v));
    },
  };
}

const bytes16 = (fill: number) => new Uint8Array(16).fill(fill);
/** 16 serial bytes that all map to accepted base-36 digits. */
const serialBytes = (seed: number) =>
  Uint8Array.from({ length: SERIAL_LENGTH }, (_, i) => (seed * 31 + i * 7) % 252);

function collisions(): {
  log: [ValueField, string][];
  onCollision: (f: ValueField, v: string) => void;
} {
  const log: [ValueField, string][] = [];
  return { log, onCollision: (f, v) => log.push([f, v]) };
}

describe("collisions with values already in the store", () => {
  it("redraws a vm_uuid that another VM holds", () => {
    const taken = uuidV4FromBytes(bytes16(0x11));
    const { random, calls } = queueRandom([bytes16(0x11)]);
    const c = collisions();
    const ids = applyPolicy(undefined, POLICIES.fresh, setOf([taken]), { random, ...c });
    expect(c.log).toEqual([["vm_uuid", taken]]);
    expect(ids.vm_uuid).not.toBe(taken);
    expect(calls[0]).toBe(16);
    expectNoDuplicates(ids);
    expect(keysOf(ids)).not.toContain(canonicalHex(taken));
  });

  it("redraws a MAC that another VM holds", () => {
    const taken = "52:54:00:aa:bb:cc";
    const { random } = queueRandom([
      randomBytes(16), // vm_uuid
      randomBytes(16), // machine_id
      Uint8Array.of(0xaa, 0xbb, 0xcc), // mac: taken
      Uint8Array.of(0xaa, 0xbb, 0xcd), // mac: free
    ]);
    const c = collisions();
    const ids = applyPolicy(undefined, POLICIES.fresh, setOf([taken]), { random, ...c });
    expect(c.log).toEqual([["mac_address", taken]]);
    expect(ids.mac_address).toBe("52:54:00:aa:bb:cd");
    expectNoDuplicates(ids);
  });

  it("redraws a machine_id whose bits equal a stored UUID (compared without dashes)", () => {
    const storedUuid = uuidV4FromBytes(bytes16(0x5a));
    const { random } = queueRandom([randomBytes(16), bytes16(0x5a)]);
    const c = collisions();
    const ids = applyPolicy(undefined, POLICIES.fresh, setOf([storedUuid]), { random, ...c });
    expect(c.log).toEqual([["machine_id", canonicalHex(storedUuid)]]);
    expect(ids.machine_id).not.toBe(canonicalHex(storedUuid));
    expectNoDuplicates(ids);
  });

  it("redraws serials that another VM holds", () => {
    const takenCpu = newSerial("CPU", () => serialBytes(1));
    const takenMb = newSerial("MB", () => serialBytes(2));
    // vm_uuid, machine_id, mac, 7 UUIDs, then cpu (taken, free), mb (taken, free).
    const { random, remaining } = queueRandom([
      ...Array.from({ length: 2 }, () => randomBytes(16)),
      randomBytes(3),
      ...Array.from({ length: 7 }, () => randomBytes(16)),
      serialBytes(1),
      serialBytes(3),
      serialBytes(2),
      serialBytes(4),
    ]);
    const c = collisions();
    const ids = applyPolicy(undefined, POLICIES.fresh, setOf([takenCpu, takenMb]), {
      random,
      ...c,
    });
    expect(remaining()).toBe(0);
    expect(c.log).toEqual([
      ["cpu_serial", takenCpu],
      ["motherboard_serial", takenMb],
    ]);
    expect(ids.cpu_serial).toBe(newSerial("CPU", () => serialBytes(3)));
    expect(ids.motherboard_serial).toBe(newSerial("MB", () => serialBytes(4)));
    expectNoDuplicates(ids);
  });

  it("a regeneration never hands back a value the VM itself is giving up", () => {
    const current = parseIdentifiers(fixture("seed-identifiers.json"));
    // Replay the bytes of the current disk_uuid for the new disk_uuid.
    const oldDiskBytes = Buffer.from(canonicalHex(current.disk_uuid), "hex");
    const { random } = queueRandom([oldDiskBytes]);
    const c = collisions();
    const store = setOf(IDENTIFIER_FIELDS.map((f) => current[f]));
    const next = applyPolicy(current, POLICIES.disk, store, { random, ...c });
    expect(c.log).toEqual([["disk_uuid", current.disk_uuid]]);
    expect(next.disk_uuid).not.toBe(current.disk_uuid);
    expectNoDuplicates(next);
  });
});

describe("collisions inside the identity being drawn", () => {
  it("redraws a machine_id equal to the vm_uuid just drawn for the same identity", () => {
    const { random } = queueRandom([bytes16(0x42), bytes16(0x42), bytes16(0x43)]);
    const c = collisions();
    const ids = applyPolicy(undefined, POLICIES.fresh, none, { random, ...c });
    expect(ids.vm_uuid).toBe(uuidV4FromBytes(bytes16(0x42)));
    expect(c.log).toEqual([["machine_id", canonicalHex(ids.vm_uuid)]]);
    expect(ids.machine_id).toBe(canonicalHex(uuidV4FromBytes(bytes16(0x43))));
    expectNoDuplicates(ids);
  });

  it("redraws a disk UUID equal to another UUID field of the same identity", () => {
    // vm_uuid, machine_id, mac, disk_uuid, partition_uuid (= disk_uuid), partition_uuid again
    const { random } = queueRandom([
      bytes16(1),
      bytes16(2),
      Uint8Array.of(1, 2, 3),
      bytes16(3),
      bytes16(3),
      bytes16(4),
    ]);
    const c = collisions();
    const ids = applyPolicy(undefined, POLICIES.fresh, none, { random, ...c });
    expect(c.log).toEqual([["partition_uuid", uuidV4FromBytes(bytes16(3))]]);
    expect(ids.partition_uuid).toBe(uuidV4FromBytes(bytes16(4)));
    expectNoDuplicates(ids);
  });

  it("redraws a new value equal to a field the policy keeps (disk policy, empty store)", () => {
    const current = parseIdentifiers(fixture("seed-identifiers.json"));
    // New disk_uuid = the kept vm_uuid (drawn before) ; new partition_uuid = the kept dmi_uuid
    // (a kept field that comes after it in file order).
    const { random } = queueRandom([
      Buffer.from(canonicalHex(current.vm_uuid), "hex"),
      bytes16(7),
      Buffer.from(canonicalHex(current.dmi_uuid), "hex"),
      bytes16(8),
    ]);
    const c = collisions();
    const next = applyPolicy(current, POLICIES.disk, none, { random, ...c });
    expect(c.log).toEqual([
      ["disk_uuid", current.vm_uuid],
      ["partition_uuid", current.dmi_uuid],
    ]);
    expect(next.vm_uuid).toBe(current.vm_uuid);
    expect(next.dmi_uuid).toBe(current.dmi_uuid);
    expectNoDuplicates(next);
  });
});

describe("exhaustion", () => {
  it("gives up after maxAttempts draws with a clear error naming the field", () => {
    const taken = newUuidV4(() => bytes16(9));
    const c = collisions();
    let err: unknown;
    try {
      applyPolicy(undefined, POLICIES.fresh, setOf([taken]), {
        random: () => bytes16(9),
        maxAttempts: 5,
        ...c,
      });
    } catch (error) {
      err = error;
    }
    expect(err).toBeInstanceOf(GlintError);
    expect((err as GlintError).message).toContain("vm_uuid");
    expect((err as GlintError).message).toContain("5 attempts");
    expect((err as GlintError).exitCode).toBe(1);
    expect(c.log).toHaveLength(5);
    expect(c.log.every(([f, v]) => f === "vm_uuid" && v === taken)).toBe(true);
  });

  it("gives up when a constant random source can only repeat the identity's own values", () => {
    const c = collisions();
    expect(() =>
      applyPolicy(undefined, POLICIES.fresh, none, {
        random: (n) => new Uint8Array(n),
        maxAttempts: 3,
        ...c,
      }),
    ).toThrow(/could not draw a unique machine_id after 3 attempts/);
    expect(c.log.map(([f]) => f)).toEqual(["machine_id", "machine_id", "machine_id"]);
  });

  it("defaults to a bounded number of attempts", () => {
    const taken = newUuidV4(() => bytes16(1));
    expect(() =>
      applyPolicy(undefined, POLICIES.fresh, setOf([taken]), { random: () => bytes16(1) }),
    ).toThrow(/after 10000 attempts/);
  });
});

describe("low-entropy random sources", () => {
  it("either yield an identity with no duplicates and nothing from the store, or a clear exhaustion error", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { minLength: 1, maxLength: 24 }),
        fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { maxLength: 8 }),
        (pool, storeBytes) => {
          const stored = storeBytes.map((b) => uuidV4FromBytes(b));
          const store = setOf(stored);
          let i = 0;
          // Cycles through a small pool of byte strings: many repeats.
          const random = (n: number) => {
            const b = pool[i++ % pool.length] ?? new Uint8Array(16);
            return b.length >= n ? b.subarray(0, n) : new Uint8Array(n);
          };
          const c = collisions();
          let ids: SystemIdentifiers;
          try {
            ids = applyPolicy(undefined, POLICIES.fresh, store, {
              random,
              maxAttempts: 50,
              ...c,
            });
          } catch (error) {
            expect(error).toBeInstanceOf(GlintError);
            expect((error as Error).message).toMatch(
              /could not draw a unique \w+ after 50 attempts/,
            );
            return;
          }
          expectNoDuplicates(ids);
          for (const v of stored) expect(keysOf(ids)).not.toContain(canonicalHex(v));
          // Every reported collision really was a taken value, and was not kept.
          for (const [f, v] of c.log) expect(ids[f]).not.toBe(v);
        },
      ),
      { numRuns: 300 },
    );
  });
});
