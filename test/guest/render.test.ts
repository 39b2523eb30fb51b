/**
 * Unit tests for the strict renderer and the script/seed rendering: hostile
 * values never reach a template, and valid ones land exactly where expected.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { parse as parseYaml } from "yaml";
import { GlintError, UsageError } from "../../src/errors.js";
import {
  checkMetaData,
  checkUserData,
  GUEST_SCRIPT_PATH,
  type HostnameFrom,
  hostnameFor,
  instanceIdFor,
  loadTemplate,
  placeholdersOf,
  renderPostInstallScript,
  renderSeed,
  renderTemplate,
  SCRIPT_SPEC,
  SCRIPT_TEMPLATE,
  USER_DATA_SPEC,
  USER_DATA_TEMPLATE,
} from "../../src/guest/index.js";
import { VM_NAME_RE } from "../../src/identity/formats.js";
import {
  IDENTIFIER_FIELDS,
  type SystemIdentifiers,
  uuidV4FromBytes,
} from "../../src/identity/model.js";
import { freshIds, regenerate } from "../support/identity.js";

// ---------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------

const uuidArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(uuidV4FromBytes);
const macArb = fc
  .uint8Array({ minLength: 3, maxLength: 3 })
  .map((b) => `52:54:00:${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":")}`);
const timestampArb = fc
  .date({
    min: new Date("2000-01-01T00:00:00Z"),
    max: new Date("2099-12-31T00:00:00Z"),
    noInvalidDate: true,
  })
  .map((d) => d.toISOString());

const idsArb: fc.Arbitrary<SystemIdentifiers> = fc
  .record({
    vm_uuid: uuidArb,
    machine_id: uuidArb.map((u) => u.replaceAll("-", "")),
    mac_address: macArb,
    disk_uuid: uuidArb,
    partition_uuid: uuidArb,
    filesystem_uuid: uuidArb,
    boot_uuid: uuidArb,
    swap_uuid: uuidArb,
    dmi_uuid: uuidArb,
    smbios_uuid: uuidArb,
    cpu_serial: fc.stringMatching(/^CPU[0-9A-Z]{4,32}$/),
    motherboard_serial: fc.stringMatching(/^MB[0-9A-Z]{4,32}$/),
    bios_uuid: uuidArb,
    vm_generation_id: uuidArb,
    generation: fc.integer({ min: 1, max: 2 ** 31 }),
    created_at: timestampArb,
    updated_at: timestampArb,
  })
  .map((r) => ({ schema_version: 1 as const, ...r }));

const vmNameArb = fc.stringMatching(VM_NAME_RE);
const hostnameFromArb = fc.constantFrom<HostnameFrom>("name", "machine-id");

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

function scriptValues(
  vmName: string,
  ids: SystemIdentifiers,
  from: HostnameFrom,
): Record<string, string> {
  return {
    VM_NAME: vmName,
    MACHINE_ID: ids.machine_id,
    MAC_ADDRESS: ids.mac_address,
    VM_UUID: ids.vm_uuid,
    GENERATION: String(ids.generation),
    VM_GENERATION_ID: ids.vm_generation_id,
    FILESYSTEM_UUID: ids.filesystem_uuid,
    BOOT_UUID: ids.boot_uuid,
    SWAP_UUID: ids.swap_uuid,
    PARTITION_UUID: ids.partition_uuid,
    DISK_UUID: ids.disk_uuid,
    HOSTNAME_FROM: from,
  };
}

// ---------------------------------------------------------------------------
// The renderer
// ---------------------------------------------------------------------------

describe("renderTemplate", () => {
  const spec = { A: /^[a-z]+$/, B: /^[0-9]+$/ };

  test("replaces every placeholder", () => {
    expect(renderTemplate("x={{A}} y={{B}} again={{A}}", spec, { A: "abc", B: "42" })).toBe(
      "x=abc y=42 again=abc",
    );
  });

  test("rejects unknown placeholders, missing and unknown values, unused keys", () => {
    expect(() => renderTemplate("{{A}} {{B}} {{C}}", spec, { A: "a", B: "1" })).toThrow(
      /unknown placeholder \{\{C\}\}/,
    );
    expect(() => renderTemplate("{{A}} {{B}}", spec, { A: "a" })).toThrow(/no value for \{\{B\}\}/);
    expect(() => renderTemplate("{{A}} {{B}}", spec, { A: "a", B: "1", C: "x" })).toThrow(
      /unknown value C/,
    );
    expect(() => renderTemplate("{{A}}", spec, { A: "a", B: "1" })).toThrow(
      /no placeholder \{\{B\}\}/,
    );
    // inherited properties are not values
    const inherited = Object.create({ A: "a", B: "1" }) as Record<string, string>;
    expect(() => renderTemplate("{{A}} {{B}}", spec, inherited)).toThrow(GlintError);
  });

  test("rejects malformed placeholders", () => {
    for (const t of ["{{ A }}", "{{a}}", "{{A", "{{{A}}}", "x {{A-B}} y", "{{}}"]) {
      expect(() => renderTemplate(`${t} {{A}} {{B}}`, spec, { A: "a", B: "1" }), t).toThrow(
        /malformed placeholder/,
      );
    }
    expect(() => placeholdersOf("ok\n\nbad {{ x }}", "t")).toThrow(/line 3/);
  });

  test("rejects values that do not match, and unanchored or stateful patterns", () => {
    expect(() => renderTemplate("{{A}} {{B}}", spec, { A: "a'b", B: "1" })).toThrow(/not allowed/);
    expect(() => renderTemplate("{{A}} {{B}}", spec, { A: "a", B: "1\n" })).toThrow(/not allowed/);
    expect(() => renderTemplate("{{A}}", { A: /[a-z]+/ }, { A: "a" })).toThrow(/anchored/);
    expect(() => renderTemplate("{{A}}", { A: /^[a-z]+$/g }, { A: "a" })).toThrow(/anchored/);
  });

  test("replacement patterns in values are literal", () => {
    expect(renderTemplate("<{{A}}>", { A: /^[$&1']+$/ }, { A: "$&$1$'" })).toBe("<$&$1$'>");
  });
});

// ---------------------------------------------------------------------------
// The script
// ---------------------------------------------------------------------------

describe("renderPostInstallScript", () => {
  const template = loadTemplate(SCRIPT_TEMPLATE);

  test("the template uses exactly the spec's placeholders, each inside single quotes", () => {
    expect(placeholdersOf(template).sort()).toEqual(Object.keys(SCRIPT_SPEC).sort());
    const uses = [...template.matchAll(/\{\{[A-Z_]+\}\}/g)];
    expect(uses.length).toBe(Object.keys(SCRIPT_SPEC).length);
    for (const m of uses) {
      const i = m.index ?? -1;
      expect(template[i - 1], m[0]).toBe("'");
      expect(template[i + m[0].length], m[0]).toBe("'");
    }
  });

  test("every value lands exactly in its assignment and nowhere else (property)", () => {
    fc.assert(
      fc.property(vmNameArb, idsArb, hostnameFromArb, (name, ids, from) => {
        const script = renderPostInstallScript(name, ids, { hostnameFrom: from });
        expect(script).not.toContain("{{");
        const values = scriptValues(name, ids, from);
        let back = script;
        for (const [key, value] of Object.entries(values)) {
          const lines = script.split("\n").filter((l) => l.startsWith(`${key}=`));
          expect(lines).toEqual([`${key}='${value}'`]);
          back = back.replace(`\n${key}='${value}'\n`, `\n${key}='{{${key}}}'\n`);
        }
        // Putting the placeholders back yields the template byte for byte:
        // nothing else in the script depends on the values.
        expect(back).toBe(template);
      }),
      { numRuns: 200 },
    );
  });

  test("hostile values in any field throw before rendering", () => {
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
        expect(
          () => renderPostInstallScript("vm", evil),
          `${field}=${JSON.stringify(bad)}`,
        ).toThrow(GlintError);
        expect(() => renderSeed("vm", evil), `${field}=${JSON.stringify(bad)}`).toThrow(GlintError);
      }
    }
    for (const bad of [0, -1, 1.5, Number.NaN, "1", "1; reboot", null]) {
      const evil = { ...ids, generation: bad } as unknown as SystemIdentifiers;
      expect(() => renderPostInstallScript("vm", evil)).toThrow(GlintError);
    }
    const extra = { ...ids, note: "'; rm -rf /" } as unknown as SystemIdentifiers;
    expect(() => renderPostInstallScript("vm", extra)).toThrow(/unknown field/);
    expect(() => renderPostInstallScript("vm", null as unknown as SystemIdentifiers)).toThrow(
      GlintError,
    );
  });

  test("one dangerous character anywhere in any value throws (property)", () => {
    const stringFields = IDENTIFIER_FIELDS;
    fc.assert(
      fc.property(
        idsArb,
        fc.constantFrom(...stringFields),
        fc.constantFrom(...DANGEROUS_CHARS),
        fc.nat(),
        (ids, field, ch, pos) => {
          const v = ids[field];
          const at = pos % (v.length + 1);
          const evil = { ...ids, [field]: v.slice(0, at) + ch + v.slice(at) };
          expect(() => renderPostInstallScript("vm", evil)).toThrow(GlintError);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("hostile VM names and hostname sources throw usage errors", () => {
    const ids = freshIds();
    for (const bad of [...HOSTILE, "Web", "-vm", "a".repeat(64), "vm.local", "vm_1"]) {
      expect(() => renderPostInstallScript(bad, ids), JSON.stringify(bad)).toThrow(UsageError);
      expect(() => renderSeed(bad, ids), JSON.stringify(bad)).toThrow(UsageError);
    }
    for (const bad of ["fqdn", "$(id)", "", "NAME"]) {
      const opts = { hostnameFrom: bad as HostnameFrom };
      expect(() => renderPostInstallScript("vm", ids, opts)).toThrow(UsageError);
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
// cloud-init seed
// ---------------------------------------------------------------------------

describe("renderSeed", () => {
  test("user-data is a #cloud-config that installs and runs the rendered script", () => {
    const ids = freshIds();
    const { userData, metaData } = renderSeed("web-01", ids);
    expect(userData.split("\n")[0]).toBe("#cloud-config");
    const cfg = parseYaml(userData) as Record<string, unknown>;
    expect(cfg.ssh_deletekeys).toBe(true);
    expect(cfg.preserve_hostname).toBe(false);
    expect(cfg.hostname).toBe("web-01");
    const files = cfg.write_files as {
      path: string;
      encoding: string;
      content: string;
      permissions: string;
    }[];
    expect(files).toHaveLength(1);
    expect(files[0]?.path).toBe(GUEST_SCRIPT_PATH);
    expect(files[0]?.encoding).toBe("b64");
    expect(files[0]?.permissions).toBe("0755");
    expect(Buffer.from(files[0]?.content ?? "", "base64").toString("utf8")).toBe(
      renderPostInstallScript("web-01", ids),
    );
    expect((cfg.runcmd as string[][])[0]).toEqual([GUEST_SCRIPT_PATH, "--no-ssh-keys"]);

    const meta = parseYaml(metaData) as Record<string, unknown>;
    expect(meta).toEqual({
      "instance-id": `iid-${ids.vm_uuid}-g${ids.generation}`,
      "local-hostname": "web-01",
    });
  });

  test("the hostname follows hostnameFrom in both files and in the embedded script", () => {
    const ids = freshIds();
    const { userData, metaData } = renderSeed("web-01", ids, { hostnameFrom: "machine-id" });
    const h = `glint-${ids.machine_id.slice(0, 8)}`;
    expect((parseYaml(userData) as { hostname: string }).hostname).toBe(h);
    expect((parseYaml(metaData) as Record<string, string>)["local-hostname"]).toBe(h);
    const cfg = parseYaml(userData) as { write_files: { content: string }[] };
    const script = Buffer.from(cfg.write_files[0]?.content ?? "", "base64").toString("utf8");
    expect(script).toContain("\nHOSTNAME_FROM='machine-id'\n");
  });

  test("the instance-id changes with every generation and is stable otherwise", () => {
    const ids = freshIds();
    const a = renderSeed("vm", ids);
    expect(renderSeed("vm", ids)).toEqual(a);
    const seen = new Set([instanceIdFor(ids)]);
    let cur = ids;
    for (const policy of ["disk", "base", "nuke", "disk"] as const) {
      cur = regenerate(cur, policy);
      const meta = parseYaml(renderSeed("vm", cur).metaData) as Record<string, string>;
      expect(meta["instance-id"]).toBe(instanceIdFor(cur));
      expect(seen.has(instanceIdFor(cur))).toBe(false);
      seen.add(instanceIdFor(cur));
    }
    // "disk" keeps vm_uuid: only the generation tells the instances apart.
    const d = regenerate(ids, "disk");
    expect(d.vm_uuid).toBe(ids.vm_uuid);
    expect(instanceIdFor(d)).not.toBe(instanceIdFor(ids));
  });

  test("broken user-data or meta-data is rejected", () => {
    const ids = freshIds();
    const { userData, metaData } = renderSeed("web-01", ids);
    const script = renderPostInstallScript("web-01", ids);
    const expected = { hostname: "web-01", script };
    expect(() => checkUserData(userData, expected)).not.toThrow();

    const content = /content: '([^']+)'/.exec(userData)?.[1] ?? "";
    expect(content.length).toBeGreaterThan(100);
    const flipped = content.startsWith("I") ? `J${content.slice(1)}` : `I${content.slice(1)}`;
    const broken: [string, string, RegExp][] = [
      ["no header", userData.replace("#cloud-config\n", ""), /first line/],
      ["header not first", `\n${userData}`, /first line/],
      [
        "ssh_deletekeys false",
        userData.replace("ssh_deletekeys: true", "ssh_deletekeys: false"),
        /ssh_deletekeys/,
      ],
      [
        "YAML 1.1 boolean hostname",
        userData.replace("hostname: 'web-01'", "hostname: yes"),
        /hostname/,
      ],
      ["duplicate key", `${userData}hostname: 'web-01'\n`, /YAML/],
      [
        "bad indentation",
        userData.replace("    encoding: b64", "      encoding: b64"),
        /YAML|write_files/,
      ],
      ["unknown key", `${userData}bootcmd: [[reboot]]\n`, /bootcmd|Unrecognized/i],
      ["other script", userData.replace(content, flipped), /embedded script/],
      [
        "runcmd elsewhere",
        userData.replace(`['${GUEST_SCRIPT_PATH}', '--no-ssh-keys']`, "['/bin/true']"),
        /runcmd/,
      ],
    ];
    for (const [what, text, re] of broken) {
      expect(text, what).not.toBe(userData);
      expect(() => checkUserData(text, expected), what).toThrow(re);
    }
    expect(() => checkUserData(userData, { ...expected, hostname: "other" })).toThrow(/hostname/);

    const meta = { instanceId: instanceIdFor(ids), hostname: "web-01" };
    expect(() => checkMetaData(metaData, meta)).not.toThrow();
    expect(() =>
      checkMetaData(metaData, { ...meta, instanceId: instanceIdFor(regenerate(ids, "disk")) }),
    ).toThrow(/instance-id/);
    expect(() => checkMetaData(`${metaData}extra: 1\n`, meta)).toThrow(GlintError);
    expect(() => checkMetaData("instance-id: [\n", meta)).toThrow(/YAML/);
  });

  test("a template that forgets to quote the hostname fails validation", () => {
    const ids = freshIds();
    const unquoted = loadTemplate(USER_DATA_TEMPLATE).replace(
      "hostname: '{{HOSTNAME}}'",
      "hostname: {{HOSTNAME}}",
    );
    expect(unquoted).not.toBe(loadTemplate(USER_DATA_TEMPLATE));
    const script = renderPostInstallScript("123", ids);
    const text = renderTemplate(unquoted, USER_DATA_SPEC, {
      VM_NAME: "123",
      GENERATION: "1",
      HOSTNAME: "123",
      SCRIPT_B64: Buffer.from(script).toString("base64"),
    });
    expect(() => checkUserData(text, { hostname: "123", script })).toThrow(/hostname/);
    // The real template renders numeric-looking names as strings.
    expect((parseYaml(renderSeed("123", ids).userData) as { hostname: unknown }).hostname).toBe(
      "123",
    );
  });
});
