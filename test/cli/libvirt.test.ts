/**
 * `glint libvirt` on bad input: an unknown VM or domain, malformed XML, an
 * unreachable daemon, a domain that exists already, bad usage. Each gives
 * one line and a non-zero exit, and changes nothing (neither the home nor
 * the daemon).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, runCliOk } from "../support/cli.js";
import { type Libvirtd, startLibvirtd } from "../support/libvirtd.js";
import { snapshot } from "../support/snapshot.js";
import { tempDir } from "../support/tmp.js";

let daemon: Libvirtd;
let home: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  daemon = await startLibvirtd();
  home = await tempDir("glint-cli-libvirt-");
  env = { GLINT_LIBVIRT_SWTPM_DIR: daemon.swtpmDir };
  await runCliOk(["create", "vm1", "--home", home, "--tpm"], { env });
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
}, 60_000);

/** Run glint; it must fail with `code` and one line, and leave the home and the daemon as they were. */
async function fails(args: readonly string[], code: number, message: RegExp): Promise<string> {
  const before = await snapshot(home);
  const domains = await daemon.virsh(["list", "--all", "--name"]);
  const swtpm = await snapshot(daemon.swtpmDir).catch(() => ({}));
  const r = await runCli(["--home", home, ...args], { env });
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^glint: /);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(await snapshot(home)).toEqual(before);
  expect(await daemon.virsh(["list", "--all", "--name"])).toBe(domains);
  expect(await snapshot(daemon.swtpmDir).catch(() => ({}))).toEqual(swtpm);
  return lines[0] ?? "";
}

describe("glint libvirt: bad input", () => {
  it("an unknown VM", async () => {
    await fails(["libvirt", "export", "nope"], 1, /VM "nope" has no identifiers/);
    await fails(
      ["libvirt", "define", "nope", "--connect", daemon.uri],
      1,
      /VM "nope" has no identifiers/,
    );
  });

  it("an unknown domain", async () => {
    await fails(
      ["libvirt", "import", "no-such-domain", "--connect", daemon.uri],
      1,
      /virsh dumpxml .*no-such-domain.*virsh list --all/,
    );
    await fails(["libvirt", "sync", "vm1", "--connect", daemon.uri], 1, /virsh domstate .*'vm1'/);
  });

  it("malformed XML, or XML that is not a domain", async () => {
    const dir = await tempDir("glint-cli-libvirt-xml-");
    const bad = path.join(dir, "bad.xml");
    await fs.writeFile(bad, "<domain><name>x</name><uuid>");
    await fails(["libvirt", "import", bad], 1, /bad\.xml is not well-formed XML/);
    const net = path.join(dir, "net.xml");
    await fs.writeFile(net, "<network><name>default</name></network>");
    await fails(["libvirt", "import", net], 1, /is not a libvirt domain/);
    await fails(
      ["libvirt", "import", path.join(dir, "missing.xml")],
      1,
      /cannot read .*missing\.xml/,
    );
    // More NICs than a Glint VM has.
    const many = path.join(dir, "many.xml");
    const nics = Array.from(
      { length: 17 },
      (_, i) =>
        `<interface type='network'><mac address='52:54:00:50:00:${String(i).padStart(2, "0")}'/></interface>`,
    ).join("");
    await fs.writeFile(
      many,
      `<domain type='kvm'><name>many</name><devices>${nics}</devices></domain>`,
    );
    await fails(
      ["libvirt", "import", many],
      1,
      /domain "many" has 17 NICs; a Glint VM has at most 16; import a copy of the XML with fewer <interface> elements$/,
    );
  });

  it("an unreachable daemon", async () => {
    const uri = `qemu+unix:///system?socket=${path.join(home, "no-such.sock")}`;
    await fails(
      ["libvirt", "define", "vm1", "--connect", uri],
      1,
      /failed to connect.*check that the libvirt daemon/i,
    );
    await fails(
      ["libvirt", "import", "vm1", "--as", "vm2", "--connect", uri],
      1,
      /failed to connect/i,
    );
  });

  it("a domain that exists already is not redefined", async () => {
    await runCliOk(
      ["libvirt", "define", "vm1", "--type", "qemu", "--connect", daemon.uri, "--home", home],
      {
        env,
      },
    );
    await fails(
      ["libvirt", "define", "vm1", "--connect", daemon.uri],
      1,
      /libvirt domain "vm1" exists already; update it with `glint libvirt sync vm1`/,
    );
    // The recorded URI is used from now on.
    const config = JSON.parse(await fs.readFile(path.join(home, "vm1", "config.json"), "utf8"));
    expect(config.libvirt).toEqual({ domain: "vm1", uri: daemon.uri });
  });

  it("a domain name that is no VM name, and bad usage", async () => {
    const dir = await tempDir("glint-cli-libvirt-xml-");
    const xml = path.join(dir, "d.xml");
    await fs.writeFile(xml, "<domain type='kvm'><name>Web_Server</name></domain>");
    await fails(["libvirt", "import", xml], 2, /is not a valid VM name: give one with --as NAME/);
    await fails(["libvirt", "import", xml, "--as", "vm1"], 1, /VM "vm1" already exists/);
    await fails(["libvirt"], 2, /libvirt needs an action/);
    await fails(["libvirt", "frob"], 2, /unknown libvirt action 'frob'/);
    await fails(["libvirt", "export", "vm1", "--validate"], 2, /--validate needs -o FILE/);
    await fails(["libvirt", "export", "vm1", "--type", "xen"], 2, /xen/);
    await fails(
      ["libvirt", "define", "vm1", "--name", "a b", "--connect", daemon.uri],
      2,
      /invalid libvirt domain name/,
    );
  });

  it("a VM whose config has more NICs than its identity has MACs", async () => {
    await runCliOk(["create", "vm3", "--home", home], { env });
    const file = path.join(home, "vm3", "config.json");
    const config = JSON.parse(await fs.readFile(file, "utf8"));
    await fs.writeFile(file, JSON.stringify({ ...config, nics: 3 }));
    const line = /VM vm3 has 3 NICs but MACs for only 1: run `glint edit vm3 --nics 3`/;
    await fails(["libvirt", "export", "vm3"], 1, line);
    await fails(["libvirt", "define", "vm3", "--connect", daemon.uri], 1, line);
    // The advice works: then every NIC has its MAC.
    await runCliOk(["edit", "vm3", "--nics", "3", "--yes", "--home", home], { env });
    const xml = await runCliOk(["libvirt", "export", "vm3", "--home", home], { env });
    expect(xml.match(/<interface /g)).toHaveLength(3);
  });

  it("--json failures are one JSON object with the code", async () => {
    const r = await runCli(
      ["libvirt", "import", "no-such-domain", "--connect", daemon.uri, "--json", "--home", home],
      {
        env,
      },
    );
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: "not-found" } });
  });
});
