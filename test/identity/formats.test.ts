/**
 * Every generator's output matches its schema for arbitrary injected random
 * bytes, and strings outside the schemas are rejected.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CPU_SERIAL_RE,
  canonicalHex,
  cpuSerial,
  MAC_RE,
  MACHINE_ID_RE,
  MB_SERIAL_RE,
  macAddress,
  machineId,
  machineIdToUuid,
  motherboardSerial,
  serialFormat,
  timestamp,
  UUID_V4_RE,
  uuidV4,
} from "../../src/identity/formats.js";
import {
  drawIdentifier,
  newMacAddress,
  newMachineId,
  newSerial,
  newUuidV4,
  SERIAL_LENGTH,
} from "../../src/identity/generate.js";
import { IDENTIFIER_FIELDS, systemIdentifiersSchema } from "../../src/identity/model.js";
import { streamRandom } from "../support/random.js";

const HEX = "0123456789abcdef".split("");
const hexString = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...HEX), minLength: min, maxLength: max });
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const RUNS = { numRuns: 500 };

describe("newUuidV4", () => {
  it("is a lowercase v4 UUID carrying the injected bytes except the version/variant bits", () => {
    fc.assert(
      fc.property(bytes(16), (b) => {
        const u = newUuidV4(streamRandom(b));
        expect(u).toMatch(UUID_V4_RE);
        expect(uuidV4.safeParse(u).success).toBe(true);
        const h = u.replaceAll("-", "");
        const want = Buffer.from(b);
        want[6] = ((want[6] ?? 0) & 0x0f) | 0x40;
        want[8] = ((want[8] ?? 0) & 0x3f) | 0x80;
        expect(h).toBe(want.toString("hex"));
      }),
      RUNS,
    );
  });

  it("rejects a random source that returns too few bytes", () => {
    expect(() => newUuidV4(() => new Uint8Array(15))).toThrow(RangeError);
  });
});

describe("newMachineId", () => {
  it("is 32 lowercase hex with v4 bits, never all zeros", () => {
    fc.assert(
      fc.property(bytes(16), (b) => {
        const id = newMachineId(streamRandom(b));
        expect(id).toMatch(MACHINE_ID_RE);
        expect(machineId.safeParse(id).success).toBe(true);
        expect(id).toHaveLength(32);
        expect(id[12]).toBe("4");
        expect("89ab").toContain(id[16]);
        expect(id).not.toBe("0".repeat(32));
        // Its dashed form is a valid v4 UUID (systemd prints it that way too).
        expect(machineIdToUuid(id)).toMatch(UUID_V4_RE);
        expect(canonicalHex(machineIdToUuid(id))).toBe(id);
      }),
      RUNS,
    );
  });

  it("is not all zeros even when the random source returns only zeros", () => {
    const id = newMachineId(() => new Uint8Array(16));
    expect(id).toBe("00000000000040008000000000000000");
    expect(id).toMatch(/[^0]/);
    expect(machineId.safeParse(id).success).toBe(true);
    expect(machineId.safeParse("0".repeat(32)).success).toBe(false);
  });
});

describe("newMacAddress", () => {
  it("is 52:54:00 + the three injected bytes, unicast and locally administered", () => {
    fc.assert(
      fc.property(bytes(3), (b) => {
        const mac = newMacAddress(streamRandom(b));
        expect(mac).toMatch(MAC_RE);
        expect(macAddress.safeParse(mac).success).toBe(true);
        const octets = mac.split(":").map((o) => Number.parseInt(o, 16));
        expect(octets).toHaveLength(6);
        const first = octets[0] ?? -1;
        expect(first).toBe(0x52);
        expect(first & 0b01).toBe(0); // unicast
        expect(first & 0b10).toBe(0b10); // locally administered
        expect(octets.slice(3)).toEqual([...b]);
      }),
      RUNS,
    );
  });
});

describe("newSerial", () => {
  it.each([
    ["CPU", CPU_SERIAL_RE, cpuSerial],
    ["MB", MB_SERIAL_RE, motherboardSerial],
  ] as const)(
    "%s serial matches its schema for arbitrary bytes, ≤ 64 bytes, no commas",
    (prefix, re, schema) => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), (b) => {
          const s = newSerial(prefix, streamRandom(b));
          expect(s).toMatch(re);
          expect(schema.safeParse(s).success).toBe(true);
          expect(s.startsWith(prefix)).toBe(true);
          expect(s).toHaveLength(prefix.length + SERIAL_LENGTH);
          expect(Buffer.byteLength(s, "utf8")).toBeLessThanOrEqual(64);
          expect(s).not.toContain(",");
        }),
        RUNS,
      );
    },
  );

  it("maps accepted bytes to base-36 digits and skips bytes ≥ 252 (no modulo bias)", () => {
    // Only bytes 252..255: all rejected, so the serial comes from the second call.
    const first = new Uint8Array(SERIAL_LENGTH).fill(255);
    first[0] = 252;
    const second = Uint8Array.from({ length: SERIAL_LENGTH }, (_, i) => (i * 37) % 252);
    let call = 0;
    const s = newSerial("CPU", (n) => {
      call++;
      expect(n).toBe(SERIAL_LENGTH);
      return call === 1 ? first : second;
    });
    expect(call).toBe(2);
    const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const want = Array.from(second, (x) => alphabet[x % 36]).join("");
    expect(s).toBe(`CPU${want}`);
  });
});

describe("drawIdentifier", () => {
  it("draws a value valid for the field's schema, for every identifier field", () => {
    const shape = systemIdentifiersSchema.shape;
    fc.assert(
      fc.property(
        fc.constantFrom(...IDENTIFIER_FIELDS),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        (field, b) => {
          const v = drawIdentifier(field, streamRandom(b));
          const r = shape[field].safeParse(v);
          expect(r.success, `${field}=${v}`).toBe(true);
        },
      ),
      RUNS,
    );
  });

  it("uses only the injected randomness (same bytes → same value)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...IDENTIFIER_FIELDS),
        fc.uint8Array({ minLength: 16, maxLength: 64 }),
        (field, b) => {
          expect(drawIdentifier(field, streamRandom(b))).toBe(
            drawIdentifier(field, streamRandom(b)),
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("schemas reject values outside the formats", () => {
  const validUuid = fc.uuid({ version: 4 });

  it("rejects uppercase UUIDs", () => {
    fc.assert(
      fc.property(validUuid, (u) => {
        const upper = u.toUpperCase();
        fc.pre(upper !== u);
        expect(uuidV4.safeParse(upper).success).toBe(false);
      }),
      RUNS,
    );
  });

  it("rejects UUIDs of other versions (v1, v3, v5, v7) and the nil UUID", () => {
    fc.assert(
      fc.property(fc.uuid({ version: [1, 3, 5, 7] }), (u) => {
        expect(uuidV4.safeParse(u.toLowerCase()).success).toBe(false);
      }),
      RUNS,
    );
    expect(uuidV4.safeParse("00000000-0000-0000-0000-000000000000").success).toBe(false);
    expect(uuidV4.safeParse("123e4567-e89b-12d3-a456-426614174000").success).toBe(false);
  });

  it("rejects v4 UUIDs with a wrong variant nibble", () => {
    fc.assert(
      fc.property(validUuid, fc.constantFrom(..."01234567cdef".split("")), (u, nibble) => {
        const bad = `${u.slice(0, 19)}${nibble}${u.slice(20)}`;
        expect(uuidV4.safeParse(bad).success).toBe(false);
      }),
      RUNS,
    );
  });

  it("rejects machine-ids that are not 32 hex characters (e.g. the seed's 40-char md5-ish ids)", () => {
    fc.assert(
      fc.property(
        hexString(0, 64).filter((s) => s.length !== 32),
        (s) => {
          expect(machineId.safeParse(s).success).toBe(false);
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(hexString(40, 40), (s) => {
        expect(machineId.safeParse(s).success).toBe(false);
      }),
      RUNS,
    );
  });

  it("rejects 32-hex machine-ids without the v4 bits, uppercase or dashed ones", () => {
    fc.assert(
      fc.property(hexString(32, 32), (s) => {
        const v4 = s[12] === "4" && "89ab".includes(s[16] ?? "");
        expect(machineId.safeParse(s).success).toBe(v4);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(validUuid, (u) => {
        const id = canonicalHex(u);
        expect(machineId.safeParse(id).success).toBe(true);
        expect(machineId.safeParse(u).success).toBe(false);
        fc.pre(id.toUpperCase() !== id);
        expect(machineId.safeParse(id.toUpperCase()).success).toBe(false);
      }),
      RUNS,
    );
  });

  it("rejects MACs that are not locally administered unicast, uppercase or malformed", () => {
    const octet = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, "0"));
    fc.assert(
      fc.property(fc.array(octet, { minLength: 6, maxLength: 6 }), (o) => {
        const mac = o.join(":");
        // Second hex digit 2, 6, a or e: locally administered (bit 1), unicast (bit 0 clear).
        const ok = /^[0-9a-f][26ae]$/.test(o[0] ?? "");
        expect(macAddress.safeParse(mac).success).toBe(ok);
      }),
      RUNS,
    );
    for (const bad of [
      "52:54:00:AB:CD:EF",
      "52-54-00-12-34-56",
      "525400123456",
      "52:54:00:12:34",
      "52:54:00:12:34:56:78",
      "53:54:00:12:34:56",
      "01:00:00:12:34:56",
      "00:16:3e:12:34:56",
      "03:00:00:12:34:56",
      " 52:54:00:12:34:56",
    ]) {
      expect(macAddress.safeParse(bad).success, bad).toBe(false);
    }
  });

  it("rejects serials with commas, lowercase, other prefixes or over 64 bytes", () => {
    for (const bad of [
      "CPU1234,5678",
      "CPUabcd1234",
      "CPU123",
      "MB1234567890",
      `CPU${"A".repeat(61)}`,
      "CPU1234 5678",
      "CPU1234\n",
    ]) {
      expect(cpuSerial.safeParse(bad).success, bad).toBe(false);
    }
    for (const bad of ["MB12,34,56", "mb12345678", "CPU12345678", `MB${"9".repeat(63)}`]) {
      expect(motherboardSerial.safeParse(bad).success, bad).toBe(false);
    }
    // Seed-style serials (digits after the prefix) are fine.
    expect(cpuSerial.safeParse("CPU1234567890").success).toBe(true);
    expect(motherboardSerial.safeParse("MB0987654321").success).toBe(true);
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        const r = cpuSerial.safeParse(`CPU${s}`);
        if (r.success) {
          expect(s).toMatch(/^[0-9A-Z]{4,32}$/);
          expect(Buffer.byteLength(`CPU${s}`)).toBeLessThanOrEqual(64);
        }
      }),
      RUNS,
    );
  });

  it("timestamps need a timezone and a real date", () => {
    expect(timestamp.safeParse("2026-01-31T12:00:00Z").success).toBe(true);
    expect(timestamp.safeParse("2026-01-31T12:00:00.123456+02:00").success).toBe(true);
    expect(timestamp.safeParse("2025-07-24T19:12:10.844677").success).toBe(false);
    expect(timestamp.safeParse("2026-13-01T00:00:00Z").success).toBe(false);
    expect(timestamp.safeParse("2026-01-01T25:00:00Z").success).toBe(false);
  });
});

describe("template serial formats", () => {
  it("a serial drawn in a format is the marker, the prefix, then random characters, and valid", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9A-Z]{0,8}$/),
        fc.integer({ min: 16, max: 32 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (prefix, length, bytes) => {
          const format = serialFormat.parse({ prefix, length });
          const cpu = drawIdentifier("cpu_serial", streamRandom(bytes), undefined, { cpu: format });
          const mb = drawIdentifier("motherboard_serial", streamRandom(bytes), undefined, {
            motherboard: format,
          });
          expect(cpu).toHaveLength(3 + length);
          expect(cpu.startsWith(`CPU${prefix}`)).toBe(true);
          expect(mb.startsWith(`MB${prefix}`)).toBe(true);
          expect(cpuSerial.safeParse(cpu).success).toBe(true);
          expect(motherboardSerial.safeParse(mb).success).toBe(true);
        },
      ),
    );
  });

  it("refuses prefixes outside the alphabet, lengths beyond 32, and fewer than 8 random characters", () => {
    for (const bad of [
      { prefix: "ab", length: 16 },
      { prefix: "A,B", length: 16 },
      { prefix: "", length: 33 },
      { prefix: "ABCDEFGHI", length: 16 },
      { prefix: "", length: 7 },
    ]) {
      expect(serialFormat.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
