/** identifiers.json parsing: the seed's format, the current schema, and the error messages. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { errorLine } from "../../src/cli/advice.js";
import { GlintError } from "../../src/errors.js";
import { TIMESTAMP_RE, UUID_V4_RE } from "../../src/identity/formats.js";
import { drawIdentifier } from "../../src/identity/generate.js";
import {
  IDENTIFIER_FIELDS,
  identifiersToDict,
  MAX_GENERATION,
  parseIdentifiers,
  SCHEMA_VERSION,
  SystemIdentifiers,
} from "../../src/identity/model.js";
import { POLICIES } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import { fixture } from "../support/paths.js";
import { streamRandom } from "../support/random.js";

const SEED_KEYS = [
  "vm_uuid",
  "machine_id",
  "mac_address",
  "disk_uuid",
  "partition_uuid",
  "filesystem_uuid",
  "boot_uuid",
  "swap_uuid",
  "dmi_uuid",
  "smbios_uuid",
  "cpu_serial",
  "motherboard_serial",
  "bios_uuid",
  "created_at",
];

function errorOf(fn: () => unknown): GlintError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(GlintError);
    return error as GlintError;
  }
  throw new Error("expected the call to throw");
}

/** Arbitrary valid identity in the current schema. */
const identityArb = fc
  .record({
    bytes: fc.uint8Array({ minLength: 0, maxLength: 300 }),
    generation: fc.integer({ min: 1, max: 1_000_000 }),
    created: fc.date({
      min: new Date("1971-01-01T00:00:00Z"),
      max: new Date("2999-12-31T23:59:59Z"),
      noInvalidDate: true,
    }),
    updatedDelta: fc.integer({ min: 0, max: 10 ** 10 }),
  })
  .map(({ bytes, generation, created, updatedDelta }) => {
    const random = streamRandom(bytes);
    const ids: Record<string, string | number> = { schema_version: SCHEMA_VERSION };
    for (const f of IDENTIFIER_FIELDS) ids[f] = drawIdentifier(f, random);
    ids.generation = generation;
    ids.created_at = created.toISOString();
    ids.updated_at = new Date(created.getTime() + updatedDelta).toISOString();
    return ids;
  });

describe("the seed prototype's format", () => {
  const seed = fixture("seed-identifiers.json");

  it("the fixture has exactly the seed's 14 keys in the seed's order", () => {
    expect(Object.keys(seed)).toEqual(SEED_KEYS);
  });

  it("loads, upgrading to schema_version 1 with derived fields", () => {
    const ids = parseIdentifiers(seed, "seed.json");
    expect(ids.schema_version).toBe(1);
    for (const k of SEED_KEYS.filter((k) => k !== "created_at")) {
      expect(ids[k as keyof SystemIdentifiers], k).toBe(seed[k]);
    }
    expect(ids.created_at).toBe(`${seed.created_at}Z`);
    expect(ids.created_at).toMatch(TIMESTAMP_RE);
    expect(ids.updated_at).toBe(ids.created_at);
    expect(ids.generation).toBe(1);
    expect(ids.vm_generation_id).toMatch(UUID_V4_RE);
    expect(Object.values(identifiersToDict(ids))).not.toContain(undefined);
    expect(Object.isFrozen(ids)).toBe(true);
  });

  it("derives vm_generation_id deterministically from vm_uuid", () => {
    const a = parseIdentifiers(structuredClone(seed));
    const b = parseIdentifiers(structuredClone(seed));
    expect(a).toEqual(b);
    expect(a.vm_generation_id).toBe(b.vm_generation_id);
    // It depends on vm_uuid (not a constant), and is not vm_uuid itself.
    const other = parseIdentifiers({ ...seed, vm_uuid: "0b7f9a10-2c3d-4e5f-a6b7-c8d9e0f1a2b3" });
    expect(other.vm_generation_id).not.toBe(a.vm_generation_id);
    expect(a.vm_generation_id).not.toBe(a.vm_uuid);
    // An explicit vm_generation_id in a seed-format file is kept.
    const explicit = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901";
    expect(parseIdentifiers({ ...seed, vm_generation_id: explicit }).vm_generation_id).toBe(
      explicit,
    );
  });

  it("writes back in the seed's key order, with Glint's additions around it", () => {
    const dict = identifiersToDict(parseIdentifiers(seed));
    const keys = Object.keys(dict);
    expect(keys.filter((k) => SEED_KEYS.includes(k))).toEqual(SEED_KEYS);
    expect(keys[0]).toBe("schema_version");
    expect(keys.slice(-4)).toEqual(["vm_generation_id", "generation", "created_at", "updated_at"]);
    // The written form loads as the same identity (now in the current schema).
    expect(parseIdentifiers(JSON.parse(SystemIdentifiers.toJSON(parseIdentifiers(seed))))).toEqual(
      parseIdentifiers(seed),
    );
  });

  it("accepts seed timestamps with a timezone as they are", () => {
    const ids = parseIdentifiers({ ...seed, created_at: "2025-07-24T19:12:10+02:00" });
    expect(ids.created_at).toBe("2025-07-24T19:12:10+02:00");
  });

  it("rejects a seed-format file with a naive timestamp that is not a real date", () => {
    // Otherwise it would load, and `regen disk` (which keeps created_at) would
    // write an identifiers.json that Glint itself can no longer read.
    for (const created_at of ["2025-13-01T00:00:00", "2025-01-01T25:00:00.5"]) {
      const e = errorOf(() => parseIdentifiers({ ...seed, created_at }, "seed.json"));
      expect(e.message).toContain('field "created_at"');
    }
  });

  it("the seed's own example is rejected, naming machine_id first and saying how to fix it", () => {
    const bad = fixture("seed-invalid-machine-id.json");
    expect(Object.keys(bad)).toEqual(SEED_KEYS);
    expect(String(bad.machine_id)).toHaveLength(40);
    const e = errorOf(() => parseIdentifiers(bad, "/vms/x/identifiers.json"));
    expect(e.exitCode).toBe(1);
    expect(e.message.startsWith("/vms/x/identifiers.json: ")).toBe(true);
    const firstField = /field "([a-z_]+)"/.exec(e.message)?.[1];
    expect(firstField).toBe("machine_id");
    expect(e.message).toMatch(/machine_id" must be 32 lowercase hex characters/);
    expect(e.message).toContain("got 40 characters");
    // Its sample disk UUID is a v1 UUID, also reported.
    expect(e.message).toContain('field "disk_uuid"');
    // How to fix it (advice the CLI adds to the library's code and details).
    expect(e).toMatchObject({ code: "invalid-file", details: { reason: "identifiers" } });
    expect(errorLine(e as GlintError)).toContain("glint create <vm> --force");
    expect(e.message).not.toContain("\n");
  });
});

describe("the current schema", () => {
  it("toDict → parse round-trips any valid identity, in a stable key order", () => {
    fc.assert(
      fc.property(identityArb, (data) => {
        const ids = parseIdentifiers(data);
        const dict = identifiersToDict(ids);
        expect(dict).toEqual(data);
        const again = parseIdentifiers(JSON.parse(SystemIdentifiers.toJSON(ids)));
        expect(again).toEqual(ids);
        expect(Object.keys(identifiersToDict(again))).toEqual(Object.keys(dict));
        expect(SystemIdentifiers.fromDict(dict)).toEqual(ids);
      }),
      { numRuns: 300 },
    );
  });

  it("seed-format → parse → toDict → parse is stable for arbitrary valid seed files", () => {
    const naive = fc
      .tuple(
        fc.date({
          min: new Date("1971-01-01T00:00:00Z"),
          max: new Date("2999-12-31T23:59:59Z"),
          noInvalidDate: true,
        }),
        fc.string({ unit: fc.constantFrom(..."0123456789".split("")), maxLength: 9 }),
      )
      .map(([d, frac]) => d.toISOString().slice(0, 19) + (frac ? `.${frac}` : ""));
    fc.assert(
      fc.property(identityArb, naive, (data, created_at) => {
        const legacy: Record<string, unknown> = {};
        for (const k of SEED_KEYS) legacy[k] = data[k];
        legacy.created_at = created_at;
        const ids = parseIdentifiers(legacy);
        expect(ids.created_at).toBe(`${created_at}Z`);
        expect(parseIdentifiers(identifiersToDict(ids))).toEqual(ids);
      }),
      { numRuns: 300 },
    );
  });

  it("rejects unknown keys with a clear message (both formats)", () => {
    const seed = fixture("seed-identifiers.json");
    const current = identifiersToDict(parseIdentifiers(seed));
    for (const data of [
      { ...seed, hostname: "x" },
      { ...current, hostname: "x" },
    ]) {
      const e = errorOf(() => parseIdentifiers(data, "ids.json"));
      expect(e.message).toContain('unknown field "hostname"');
      expect(e.message.startsWith("ids.json: ")).toBe(true);
    }
    const two = errorOf(() => parseIdentifiers({ ...current, a: 1, b: 2 }));
    expect(two.message).toContain('unknown fields "a", "b"');
  });

  it("schema_version from a newer Glint says to upgrade", () => {
    const current = identifiersToDict(parseIdentifiers(fixture("seed-identifiers.json")));
    const e = errorOf(() => parseIdentifiers({ ...current, schema_version: 99 }, "ids.json"));
    expect(e.message).toContain("schema_version 99");
    expect(e.message).toContain("newer Glint");
    expect(errorLine(e as GlintError)).toContain("upgrade Glint");
  });

  it("names a missing field, a mistyped field and a non-object", () => {
    const current = identifiersToDict(parseIdentifiers(fixture("seed-identifiers.json")));
    const { machine_id: _m, ...noMachineId } = current;
    expect(errorOf(() => parseIdentifiers(noMachineId)).message).toContain(
      'field "machine_id" is missing',
    );
    expect(errorOf(() => parseIdentifiers({ ...current, generation: "2" })).message).toContain(
      'field "generation"',
    );
    expect(errorOf(() => parseIdentifiers({ ...current, generation: 0 })).message).toContain(
      'field "generation"',
    );
    for (const v of [null, [], "x", 3]) {
      expect(errorOf(() => parseIdentifiers(v, "f.json")).message).toContain(
        "f.json: expected a JSON object",
      );
    }
  });

  it("rejects a current-format file whose values break the formats", () => {
    const current = identifiersToDict(parseIdentifiers(fixture("seed-identifiers.json")));
    const cases: [string, unknown][] = [
      ["vm_uuid", String(current.vm_uuid).toUpperCase()],
      ["mac_address", "00:11:22:33:44:55"],
      ["cpu_serial", "CPU1234,5678"],
      ["created_at", "2025-07-24T19:12:10.844677"],
      ["machine_id", "0".repeat(32)],
    ];
    for (const [field, value] of cases) {
      const e = errorOf(() => parseIdentifiers({ ...current, [field]: value }));
      expect(e.message, field).toContain(`field "${field}"`);
    }
  });
});

describe("generation bounds", () => {
  const current = () => identifiersToDict(parseIdentifiers(fixture("seed-identifiers.json")));

  it("accepts up to 9,999,999,999 (the 10 digits the guest script checks)", () => {
    expect(parseIdentifiers({ ...current(), generation: 9_999_999_999 }).generation).toBe(
      9_999_999_999,
    );
  });

  it("a regeneration of the last generation is refused instead of writing an 11-digit one", () => {
    const last = parseIdentifiers({ ...current(), generation: MAX_GENERATION });
    expect(() => applyPolicy(last, POLICIES.base, new Set<string>())).toThrow(
      /generation 9999999999 is the last/,
    );
  });

  it.each([10_000_000_000, 1e21, Number.MAX_SAFE_INTEGER])("rejects %d", (generation) => {
    expect(() => parseIdentifiers({ ...current(), generation })).toThrow(/generation/);
  });
});
