/** The policies table, executed by applyPolicy: what each policy redraws, keeps and resets. */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalHex } from "../../src/identity/formats.js";
import {
  IDENTIFIER_FIELDS,
  type IdentifierField,
  parseIdentifiers,
  type SystemIdentifiers,
} from "../../src/identity/model.js";
import { keptFields, POLICIES, type PolicyName } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import { fixture } from "../support/paths.js";
import { streamRandom } from "../support/random.js";

const NAMES = Object.keys(POLICIES) as PolicyName[];
const none = { has: () => false };

/** A value set holding every identifier of `ids`, as the store would. */
function holding(ids: SystemIdentifiers): { has: (v: string) => boolean } {
  const keys = new Set(IDENTIFIER_FIELDS.map((f) => canonicalHex(ids[f])));
  return { has: (v) => keys.has(canonicalHex(v)) };
}

function changedFields(a: SystemIdentifiers, b: SystemIdentifiers): IdentifierField[] {
  return IDENTIFIER_FIELDS.filter((f) => a[f] !== b[f]);
}

const seedIds = parseIdentifiers(fixture("seed-identifiers.json"));
const earlier = new Date("2026-01-01T00:00:00.000Z");
const later = new Date("2026-02-02T12:34:56.789Z");

describe("POLICIES table", () => {
  it("has the four policies of the seed, each named by its key", () => {
    expect(NAMES.sort()).toEqual(["base", "disk", "fresh", "nuke"]);
    for (const n of NAMES) expect(POLICIES[n].name).toBe(n);
  });

  it("fresh, base and nuke regenerate every identifier; disk keeps the VM's network/system identity", () => {
    for (const n of ["fresh", "base", "nuke"] as const) {
      expect([...POLICIES[n].regenerate].sort()).toEqual([...IDENTIFIER_FIELDS].sort());
      expect(keptFields(POLICIES[n])).toEqual([]);
    }
    const disk = POLICIES.disk;
    for (const f of ["vm_uuid", "mac_address", "machine_id"] as const) {
      expect(disk.regenerate).not.toContain(f);
      expect(keptFields(disk)).toContain(f);
    }
    for (const f of [
      "disk_uuid",
      "partition_uuid",
      "filesystem_uuid",
      "boot_uuid",
      "swap_uuid",
      "vm_generation_id",
    ] as const) {
      expect(disk.regenerate).toContain(f);
    }
  });

  it("reset steps: disk resets UEFI and the overlay, nuke UEFI, TPM and overlay", () => {
    expect(POLICIES.disk.reset).toEqual(expect.arrayContaining(["uefi", "overlay"]));
    expect(POLICIES.disk.reset).not.toContain("tpm");
    expect(POLICIES.nuke.reset).toEqual(expect.arrayContaining(["uefi", "tpm", "overlay"]));
    expect(POLICIES.base.reset).toContain("uefi");
    for (const n of NAMES) expect(POLICIES[n].reset).toContain("guest-files");
  });

  it("only fresh refuses an existing identity", () => {
    expect(NAMES.filter((n) => POLICIES[n].refusesExisting)).toEqual(["fresh"]);
  });

  it("keptFields is the complement of regenerate", () => {
    for (const n of NAMES) {
      const p = POLICIES[n];
      expect([...keptFields(p), ...p.regenerate].sort()).toEqual([...IDENTIFIER_FIELDS].sort());
      for (const f of keptFields(p)) expect(p.regenerate).not.toContain(f);
    }
  });
});

describe("applyPolicy", () => {
  it.each(NAMES)("%s changes exactly its `regenerate` fields and keeps the rest", (name) => {
    const policy = POLICIES[name];
    const next = applyPolicy(seedIds, policy, holding(seedIds), { now: later });
    expect(changedFields(seedIds, next).sort()).toEqual([...policy.regenerate].sort());
    for (const f of keptFields(policy)) expect(next[f], f).toBe(seedIds[f]);
    expect(next.generation).toBe(seedIds.generation + 1);
    expect(next.updated_at).toBe(later.toISOString());
    expect(next.created_at).toBe(name === "disk" ? seedIds.created_at : later.toISOString());
    // The result is a valid identity.
    expect(parseIdentifiers(JSON.parse(JSON.stringify(next)))).toEqual(next);
  });

  it.each(NAMES)(
    "%s on arbitrary identities and bytes: changes ⊆ regenerate, kept fields equal",
    (name) => {
      const policy = POLICIES[name];
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 0, maxLength: 400 }),
          fc.uint8Array({ minLength: 0, maxLength: 400 }),
          (a, b) => {
            const current = applyPolicy(undefined, POLICIES.fresh, none, {
              random: streamRandom(a, "current"),
              now: earlier,
            });
            const next = applyPolicy(current, policy, holding(current), {
              random: streamRandom(b, "next"),
              now: later,
            });
            // Every regenerated field changed (the store holds the old values).
            expect(changedFields(current, next).sort()).toEqual([...policy.regenerate].sort());
            for (const f of keptFields(policy)) expect(next[f]).toBe(current[f]);
            expect(next.generation).toBe(current.generation + 1);
          },
        ),
        { numRuns: 100 },
      );
    },
  );

  it("without a current identity, every policy draws every field and starts at generation 1", () => {
    for (const n of NAMES) {
      const ids = applyPolicy(undefined, POLICIES[n], none, { now: later });
      expect(ids.generation).toBe(1);
      expect(ids.created_at).toBe(later.toISOString());
      expect(ids.updated_at).toBe(later.toISOString());
      for (const f of IDENTIFIER_FIELDS) expect(Object.values(seedIds)).not.toContain(ids[f]);
      expect(parseIdentifiers(JSON.parse(JSON.stringify(ids)))).toEqual(ids);
    }
  });

  it("generation counts every regeneration", () => {
    let ids = applyPolicy(undefined, POLICIES.fresh, none, { random: (n) => randomBytes(n) });
    const sequence: PolicyName[] = ["disk", "base", "nuke", "disk", "fresh", "base"];
    sequence.forEach((n, i) => {
      ids = applyPolicy(ids, POLICIES[n], holding(ids));
      expect(ids.generation).toBe(i + 2);
    });
  });

  it("does not modify the identity it is given", () => {
    const before = JSON.stringify(seedIds);
    applyPolicy(seedIds, POLICIES.nuke, none);
    expect(JSON.stringify(seedIds)).toBe(before);
    expect(Object.isFrozen(applyPolicy(seedIds, POLICIES.disk, none))).toBe(true);
  });
});
