/**
 * identity.env: one list of keys in code, the same list in the static
 * script; hostile values never reach the file; the parser refuses every
 * broken file the guest script refuses.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { GlintError, UsageError } from "../../src/errors.js";
import {
  APPLIED_RECORD_KEYS,
  type HostnameFrom,
  hostnameFor,
  IDENTITY_ENV_FORMATS,
  IDENTITY_ENV_KEYS,
  loadScript,
  parseIdentityEnv,
  renderIdentityEnv,
  renderPostInstallScript,
  renderSeed,
} from "../../src/guest/index.js";
import {
  CPU_SERIAL_RE,
  MAC_RE,
  MACHINE_ID_RE,
  MB_SERIAL_RE,
  UUID_V4_RE,
  VM_NAME_RE,
} from "../../src/identity/formats.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/model.js";
import { BAD_ENVS, hostnameFromArb, idsArb, VM, vmNameArb } from "../support/guest-root.js";
import { freshIds } from "../support/identity.js";

/** Strings that must never get near a shell script or a YAML file. */
const HOSTILE = [
  "'; rm -rf / #",
  "$(reboot)",
  "`id`",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion is the point
  "${IFS}",
  "a\nb",
  "x,y",
  "a b",
  "",
  " ",
  "'",
  '"',
  "\\",
  "{{VM_NAME}}",
  "\u0000",
  "ｒｍ",
  "../../etc/shadow",
  "-rf",
];

const DANGEROUS_CHARS = [
  "'",
  '"',
  "$",
  "`",
  "\n",
  "\r",
  ";",
  " ",
  ",",
  "=",
  "\\",
  "{",
  "}",
  "(",
  ")",
  "|",
  "&",
  "<",
  ">",
  "*",
  "?",
  "\t",
  "\u0000",
  "#",
  "!",
  "~",
  "é",
];

/** The script's names for the formats of identity.env, and the host's regex for each. */
const SCRIPT_FORMATS: Record<string, RegExp> = {
  name: VM_NAME_RE,
  uuid: UUID_V4_RE,
  "machine-id": MACHINE_ID_RE,
  mac: MAC_RE,
  "cpu-serial": CPU_SERIAL_RE,
  "mb-serial": MB_SERIAL_RE,
  generation: IDENTITY_ENV_FORMATS.GENERATION,
};

/** The script's ENV_FORMATS list as [key, format] pairs. */
function scriptEnvFormats(): [string, string][] {
  const m = /^ENV_FORMATS='([^']*)'$/m.exec(loadScript());
  expect(m, "ENV_FORMATS in the script").not.toBeNull();
  return (m?.[1] ?? "")
    .split(/\s+/)
    .filter(Boolean)
    .map((pair) => pair.split(":") as [string, string]);
}

// ---------------------------------------------------------------------------
// One list of keys
// ---------------------------------------------------------------------------

describe("the keys of identity.env", () => {
  test("the static script knows exactly the keys of the code's list, in order, with the same formats", () => {
    const pairs = scriptEnvFormats();
    expect(pairs.map(([k]) => k)).toEqual([...IDENTITY_ENV_KEYS]);
    for (const [key, format] of pairs) {
      expect(Object.hasOwn(SCRIPT_FORMATS, format), `${key}:${format}`).toBe(true);
      expect(SCRIPT_FORMATS[format], key).toBe(
        IDENTITY_ENV_FORMATS[key as keyof typeof IDENTITY_ENV_FORMATS],
      );
    }
  });

  test("the list covers every identifier, the VM name, the hostname and the generation", () => {
    expect([...IDENTITY_ENV_KEYS].sort()).toEqual(
      [
        ...IDENTIFIER_FIELDS.map((f) => f.toUpperCase()),
        "VM_NAME",
        "HOSTNAME",
        "GENERATION",
      ].sort(),
    );
    expect(APPLIED_RECORD_KEYS).toEqual([
      ...IDENTITY_ENV_KEYS.map((k) => k.toLowerCase()),
      "disk_ids",
      "applied_at",
    ]);
  });

  test("identity.env has exactly the keys of the list, in order, after comment lines", () => {
    const ids = freshIds();
    const text = renderIdentityEnv(VM, ids);
    const lines = text.trimEnd().split("\n");
    const keyLines = lines.filter((l) => !l.startsWith("#"));
    expect(keyLines.map((l) => l.split("=")[0])).toEqual([...IDENTITY_ENV_KEYS]);
    expect(lines.slice(0, lines.length - keyLines.length).every((l) => l.startsWith("#"))).toBe(
      true,
    );
    expect(text.endsWith("\n")).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

describe("renderIdentityEnv", () => {
  test("every value lands under its key and parses back (property)", () => {
    fc.assert(
      fc.property(vmNameArb, idsArb, hostnameFromArb, (name, ids, from) => {
        const text = renderIdentityEnv(name, ids, { hostnameFrom: from });
        const env = parseIdentityEnv(text);
        expect(env.VM_NAME).toBe(name);
        expect(env.HOSTNAME).toBe(hostnameFor(name, ids, from));
        expect(env.GENERATION).toBe(String(ids.generation));
        for (const field of IDENTIFIER_FIELDS) {
          expect(env[field.toUpperCase() as keyof typeof env]).toBe(ids[field]);
        }
        for (const line of text.split("\n")) {
          if (line === "" || line.startsWith("#")) continue;
          expect(line).toMatch(/^[A-Z][A-Z0-9_]*=[A-Za-z0-9:._-]+$/);
        }
      }),
      { numRuns: 200 },
    );
  });

  test("the script is the same for every VM and identity", () => {
    const a = renderPostInstallScript("web-01", freshIds());
    const b = renderPostInstallScript("db-02", freshIds(), { hostnameFrom: "machine-id" });
    expect(a).toBe(b);
    expect(a).toBe(loadScript());
    expect(a).not.toContain("{{");
  });

  test("hostile values in any field throw before anything is rendered", () => {
    const ids = freshIds();
    const fields = [
      ...IDENTIFIER_FIELDS,
      "generation",
      "schema_version",
      "created_at",
      "updated_at",
    ];
    for (const field of fields) {
      for (const bad of [...HOSTILE, `${String(ids[field as keyof SystemIdentifiers])}\n`]) {
        const evil = { ...ids, [field]: bad } as unknown as SystemIdentifiers;
        const what = `${field}=${JSON.stringify(bad)}`;
        expect(() => renderIdentityEnv("vm", evil), what).toThrow(GlintError);
        expect(() => renderPostInstallScript("vm", evil), what).toThrow(GlintError);
        expect(() => renderSeed("vm", evil), what).toThrow(GlintError);
      }
    }
    for (const bad of [0, -1, 1.5, Number.NaN, "1", "1; reboot", null, 1e10]) {
      const evil = { ...ids, generation: bad } as unknown as SystemIdentifiers;
      expect(() => renderIdentityEnv("vm", evil), String(bad)).toThrow(GlintError);
    }
    const extra = { ...ids, note: "'; rm -rf /" } as unknown as SystemIdentifiers;
    expect(() => renderIdentityEnv("vm", extra)).toThrow(/unknown field/);
    expect(() => renderIdentityEnv("vm", null as unknown as SystemIdentifiers)).toThrow(GlintError);
  });

  test("one dangerous character anywhere in any value throws (property)", () => {
    fc.assert(
      fc.property(
        idsArb,
        fc.constantFrom(...IDENTIFIER_FIELDS),
        fc.constantFrom(...DANGEROUS_CHARS),
        fc.nat(),
        (ids, field, ch, pos) => {
          const v = ids[field];
          const at = pos % (v.length + 1);
          const evil = { ...ids, [field]: v.slice(0, at) + ch + v.slice(at) };
          expect(() => renderIdentityEnv("vm", evil)).toThrow(GlintError);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("hostile VM names and hostname sources throw usage errors", () => {
    const ids = freshIds();
    for (const bad of [...HOSTILE, "Web", "-vm", "a".repeat(64), "vm.local", "vm_1"]) {
      expect(() => renderIdentityEnv(bad, ids), JSON.stringify(bad)).toThrow(UsageError);
      expect(() => renderPostInstallScript(bad, ids), JSON.stringify(bad)).toThrow(UsageError);
      expect(() => renderSeed(bad, ids), JSON.stringify(bad)).toThrow(UsageError);
    }
    for (const bad of ["fqdn", "$(id)", "", "NAME"]) {
      const opts = { hostnameFrom: bad as HostnameFrom };
      expect(() => renderIdentityEnv("vm", ids, opts)).toThrow(UsageError);
      expect(() => renderSeed("vm", ids, opts)).toThrow(UsageError);
    }
  });

  test("hostnameFor", () => {
    const ids = freshIds();
    expect(hostnameFor("web-01", ids, "name")).toBe("web-01");
    expect(hostnameFor("web-01", ids)).toBe("web-01");
    const h = hostnameFor("web-01", ids, "machine-id");
    expect(h).toBe(`glint-${ids.machine_id.slice(0, 8)}`);
    expect(h).toMatch(VM_NAME_RE);
    expect(() => hostnameFor("Web", ids, "name")).toThrow(UsageError);
  });
});

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

describe("parseIdentityEnv", () => {
  test("accepts what Glint writes, with either hostname", () => {
    const ids = freshIds();
    expect(parseIdentityEnv(renderIdentityEnv(VM, ids)).HOSTNAME).toBe(VM);
    expect(
      parseIdentityEnv(renderIdentityEnv(VM, ids, { hostnameFrom: "machine-id" })).HOSTNAME,
    ).toBe(`glint-${ids.machine_id.slice(0, 8)}`);
  });

  test.each(Object.entries(BAD_ENVS))("refuses %s", (_what, mutate) => {
    const ids = freshIds();
    const good = renderIdentityEnv(VM, ids);
    const bad = mutate(good, ids);
    expect(bad).not.toBe(good);
    expect(() => parseIdentityEnv(bad, "x/identity.env")).toThrow(GlintError);
    try {
      parseIdentityEnv(bad, "x/identity.env");
    } catch (error) {
      expect(error).toMatchObject({ code: "invalid-file", details: { file: "x/identity.env" } });
      expect((error as Error).message).toMatch(/^x\/identity\.env/);
    }
  });
});
