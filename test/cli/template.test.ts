/**
 * `glint template create|show|list|rm|save` and `glint create --template`
 * through the built CLI: every bad template is refused when it is saved,
 * with one line, a non-zero exit and nothing written; a VM made from a
 * template keeps its choices in config.json and its QEMU arguments.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
let templates: string;

beforeAll(async () => {
  home = await tempDir("glint-cli-template-");
  templates = path.join(home, ".glint", "templates");
});

const glintOk = (...args: string[]) => runCliOk([...args, "--home", home]);

async function snapshot(): Promise<string[]> {
  const names = await fs.readdir(templates).catch(() => [] as string[]);
  const vms = (await fs.readdir(home)).filter((n) => n !== ".glint");
  return [...names.map((n) => `t:${n}`), ...vms.map((n) => `vm:${n}`)].sort();
}

/** A refused command: exit `code`, one `glint:` line matching `message`, nothing changed. */
async function refused(args: string[], code: number, message: RegExp, input?: string) {
  const before = await snapshot();
  const r = await runCli([...args, "--home", home], input === undefined ? {} : { input });
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(/^glint: /);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(await snapshot()).toEqual(before);
}

async function writeJson(name: string, data: unknown): Promise<string> {
  const file = path.join(home, `${name}.input.json`);
  await fs.writeFile(file, JSON.stringify(data));
  return file;
}

describe("bad templates are refused when saved", () => {
  const cases: [string, unknown, RegExp][] = [
    ["unknown field", { schema_version: 1, colour: "red" }, /unknown field "colour"/],
    ["missing schema_version", { cpus: 2 }, /schema_version/],
    [
      "a control character in an SMBIOS string",
      { schema_version: 1, smbios: { system_product: "Opti\u0007Plex" } },
      /smbios\.system_product.*printable ASCII/,
    ],
    [
      "an SMBIOS string over 64 characters",
      { schema_version: 1, smbios: { system_manufacturer: "x".repeat(65) } },
      /smbios\.system_manufacturer/,
    ],
    [
      "an unknown SMBIOS field",
      { schema_version: 1, smbios: { bios_vendor: "x" } },
      /unknown field "bios_vendor"/,
    ],
    [
      "an OEM string with a prefix Glint owns",
      { schema_version: 1, oem_strings: ["glint.vm_uuid=x"] },
      /oem_strings.*Glint's own/,
    ],
    ["an OEM string with a newline", { schema_version: 1, oem_strings: ["a\nb"] }, /oem_strings/],
    [
      "a serial prefix outside the SMBIOS-safe alphabet",
      { schema_version: 1, serial_formats: { cpu: { prefix: "a,b", length: 16 } } },
      /serial_formats\.cpu\.prefix.*uppercase/,
    ],
    [
      "a serial format with too few random characters",
      { schema_version: 1, serial_formats: { motherboard: { prefix: "ABCDEFGHIJ", length: 16 } } },
      /random characters/,
    ],
    [
      "a serial longer than SMBIOS-safe 32",
      { schema_version: 1, serial_formats: { cpu: { prefix: "", length: 40 } } },
      /serial_formats\.cpu\.length/,
    ],
    [
      "a MAC prefix that is not locally administered",
      { schema_version: 1, mac_prefix: "00:11:22" },
      /mac_prefix/,
    ],
    [
      "a hostname pattern without {n} or {name}",
      { schema_version: 1, hostname_pattern: "web" },
      /hostname_pattern/,
    ],
    ["a relative base", { schema_version: 1, base: "img.qcow2" }, /base.*absolute/],
    ["an overlay without a base", { schema_version: 1, overlay: true }, /overlay.*base/],
    ["an unknown cloud", { schema_version: 1, cloud: "aws" }, /cloud/],
    ["two NICs on a bridge", { schema_version: 1, nics: 2, net: "bridge" }, /NIC/],
  ];
  for (const [what, data, message] of cases) {
    it(what, async () => {
      const file = await writeJson("bad", data);
      await refused(["template", "create", "bad", "--file", file], 1, message);
    });
  }

  it("a base image that does not exist", async () => {
    const missing = path.join(home, "nowhere.qcow2");
    const file = await writeJson("nobase", { schema_version: 1, base: missing });
    await refused(["template", "create", "nobase", "--file", file], 1, /does not exist/);
    await refused(["template", "create", "nobase", "--base", missing], 1, /does not exist/);
  });

  it("a file that is not JSON, or not an object", async () => {
    const file = path.join(home, "notjson.json");
    await fs.writeFile(file, "{ cpus: 2");
    await refused(["template", "create", "x", "--file", file], 1, /not valid JSON/);
    await refused(["template", "create", "x", "--file", "-"], 1, /JSON object/, "[1, 2]");
  });

  it("bad options and names (exit 2)", async () => {
    await refused(["template", "create", "../x"], 2, /invalid template name/);
    await refused(["template", "create", "x", "--cpu-serial", "16"], 2, /PREFIX:LENGTH/);
    await refused(["template", "create", "x", "--smbios", "novalue"], 2, /FIELD=VALUE/);
    await refused(["template", "create", "x", "--memory", "lots"], 2, /positive integer/);
  });

  it("a bad --smbios field or value given as an option", async () => {
    await refused(["template", "create", "x", "--smbios", "bios_date=1"], 1, /unknown field/);
    await refused(
      ["template", "create", "x", "--smbios", `system_product=${"y".repeat(70)}`],
      1,
      /system_product/,
    );
  });

  it("a predefined name, an existing template without --force, removing what is not there", async () => {
    await refused(["template", "create", "workstation", "--cpus", "2"], 1, /predefined/);
    await glintOk("template", "create", "small", "--memory", "256");
    await refused(["template", "create", "small", "--memory", "128"], 1, /exists already/);
    await refused(["template", "rm", "default"], 1, /predefined/);
    await refused(["template", "rm", "nothing-here"], 1, /no template "nothing-here"/);
    await refused(["template", "show", "nothing-here"], 1, /no template/);
    await glintOk("template", "rm", "small");
    expect(existsSync(path.join(templates, "small.json"))).toBe(false);
  });
});

describe("using templates", () => {
  it("list and show: the predefined templates and the home's, as JSON", async () => {
    await glintOk(
      "template",
      "create",
      "web",
      "--from",
      "default",
      "--cpus",
      "2",
      "--hostname-pattern",
      "web-{n}",
      "--smbios",
      "system_product=Web, Tier 1",
      "--oem-string",
      "rack=R1",
      "--cpu-serial",
      "W:12",
      "--mac-prefix",
      "02:47",
    );
    const list = JSON.parse(await glintOk("template", "list", "--json")) as {
      name: string;
      source: string;
    }[];
    expect(list.map((e) => `${e.name}:${e.source}`)).toEqual([
      "default:builtin",
      "uefi-secure-tpm:builtin",
      "openstack:builtin",
      "workstation:builtin",
      "web:home",
    ]);
    const shown = JSON.parse(await glintOk("template", "show", "web"));
    expect(shown).toMatchObject({
      schema_version: 1,
      cpus: 2,
      firmware: "bios",
      hostname_pattern: "web-{n}",
      smbios: { system_product: "Web, Tier 1" },
      oem_strings: ["rack=R1"],
      serial_formats: { cpu: { prefix: "W", length: 12 } },
      mac_prefix: "02:47",
    });
  });

  it("create --template: config.json keeps it, values follow its formats, QEMU gets its strings", async () => {
    await glintOk("create", "node-3", "--template", "web");
    const config = JSON.parse(await fs.readFile(path.join(home, "node-3", "config.json"), "utf8"));
    expect(config).toMatchObject({
      template: "web",
      cpus: 2,
      hostname_pattern: "web-{n}",
      smbios: { system_product: "Web, Tier 1" },
      oem_strings: ["rack=R1"],
      mac_prefix: "02:47",
    });
    const ids = await readIds(home, "node-3");
    expect(ids.cpu_serial).toMatch(/^CPUW[0-9A-Z]{11}$/);
    expect(ids.mac_address).toMatch(/^02:47(:[0-9a-f]{2}){4}$/);
    const args = JSON.parse(await glintOk("qemu-args", "node-3", "--json")) as string[];
    // The comma is doubled for QEMU; the hostname is the pattern's.
    expect(args).toContain("type=1,product=Web,, Tier 1");
    expect(args).toContain("type=11,value=rack=R1");
    expect(args.join(" ")).toContain("io.systemd.credential:system.hostname=web-3");
    // The rules persist: regeneration keeps drawing in the template's formats.
    await glintOk("nuke", "node-3", "--yes");
    const next = await readIds(home, "node-3");
    expect(next.cpu_serial).toMatch(/^CPUW[0-9A-Z]{11}$/);
    expect(next.mac_address).toMatch(/^02:47:/);
    expect(next.cpu_serial).not.toBe(ids.cpu_serial);
    // So do `regen base` and the extra MACs of NICs added later.
    await glintOk("regen", "base", "node-3", "--yes");
    await glintOk("edit", "node-3", "--nics", "3", "--yes");
    const last = await readIds(home, "node-3");
    expect(last.mac_address).toMatch(/^02:47:/);
    expect(last.mac_address).not.toBe(next.mac_address);
    expect(last.extra_macs).toHaveLength(2);
    for (const mac of last.extra_macs ?? []) expect(mac).toMatch(/^02:47(:[0-9a-f]{2}){4}$/);
  });

  it("an option given to create wins over the template", async () => {
    await glintOk("create", "node-4", "--template", "web", "--cpus", "3", "--cloud", "openstack");
    const config = JSON.parse(await fs.readFile(path.join(home, "node-4", "config.json"), "utf8"));
    expect(config.cpus).toBe(3);
    expect(config.cloud).toBe("openstack");
  });

  it("create refuses, creating nothing: an unknown template, a name the pattern cannot number", async () => {
    await refused(["create", "vm-x", "--template", "nope"], 1, /no template "nope"/);
    await refused(["create", "node", "--template", "web"], 2, /ends in a number/);
  });

  it("a template whose base image went away is refused at create; save --from VM round-trips", async () => {
    const base = path.join(home, "base.qcow2");
    await runCliOk(["create", "seedvm", "--disk-size", "1M", "--no-sysprep", "--home", home]);
    await fs.copyFile(path.join(home, "seedvm", "base.qcow2"), base);
    await glintOk("template", "create", "withbase", "--base", base, "--overlay");
    await fs.rm(base);
    await refused(["create", "vm-b1", "--template", "withbase"], 1, /does not exist/);
    await glintOk("template", "save", "like-node", "--from", "node-3");
    const saved = JSON.parse(await glintOk("template", "show", "like-node"));
    expect(saved).toMatchObject({ cpus: 2, hostname_pattern: "web-{n}", mac_prefix: "02:47" });
    await refused(["template", "save", "like-node", "--from", "node-3"], 1, /exists already/);
    await refused(["template", "save", "other", "--from", "no-such-vm"], 1, /no-such-vm/);
  });
});
