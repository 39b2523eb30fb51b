/**
 * `glint libvirt import FILE`, no daemon needed: every `<interface>` becomes
 * one of the VM's NICs (the first MAC `mac_address`, the others `extra_macs`
 * in order) and `export` writes them all back; a MAC another VM holds is
 * reported and drawn fresh; values the domain lacks are drawn fresh.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { extraMacsOf, IDENTIFIER_FIELDS, parseIdentifiers } from "../../src/identity/model.js";
import { readDomain } from "../../src/libvirt/index.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
let dir: string;

beforeAll(async () => {
  home = await tempDir("glint-libvirt-import-");
  dir = await tempDir("glint-libvirt-import-xml-");
});

const glint = (args: readonly string[]) => runCliOk([...args, "--home", home]);

/** A domain XML file with one `<interface type='network'>` per MAC. */
async function domainFile(name: string, macs: readonly string[], extra = ""): Promise<string> {
  const nics = macs
    .map(
      (m) =>
        `<interface type='network'><source network='default'/><mac address='${m}'/></interface>`,
    )
    .join("\n");
  const file = path.join(dir, `${name}.xml`);
  await fs.writeFile(
    file,
    `<domain type='kvm'><name>${name}</name>${extra}<memory unit='KiB'>524288</memory><vcpu>1</vcpu>
      <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${nics}</devices></domain>`,
  );
  return file;
}

async function configOf(vm: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(path.join(home, vm, "config.json"), "utf8"));
}

describe("glint libvirt import: NICs", () => {
  it("imports three interfaces as mac_address + two extra_macs, and exports them back", async () => {
    const macs = ["52:54:00:10:00:01", "52:54:00:10:00:02", "52:54:00:10:00:03"];
    const file = await domainFile("three", macs);
    const r = JSON.parse(await glint(["libvirt", "import", file, "--json"]));
    expect(r.nics).toBe(3);
    expect(r.adopted).toContain("mac_address");
    expect(r.adopted).toContain("extra_macs");
    expect(r.drawn).not.toContain("extra_macs");
    expect(r.collisions).toEqual([]);
    expect(r.rejected).toEqual([]);
    expect(r.identifiers.extra_macs).toEqual(macs.slice(1));
    const ids = await readIds(home, "three");
    expect(ids.mac_address).toBe(macs[0]);
    expect(extraMacsOf(parseIdentifiers(ids, "x", "three"))).toEqual(macs.slice(1));
    expect(await configOf("three")).toMatchObject({ nics: 3, net: "user" });
    // Export writes every NIC back, in order.
    const xml = await glint(["libvirt", "export", "three", "--type", "qemu"]);
    expect(readDomain(xml, "export").nics.map((n) => n.mac)).toEqual(macs);
    // And `glint run` gives the same three NICs the same MACs.
    const argv = JSON.parse(await glint(["qemu-args", "three", "--json"])) as string[];
    const nicMacs = argv.flatMap((a) => /(?:^|,)mac=([0-9a-f:]{17})/.exec(a)?.[1] ?? []);
    expect(nicMacs).toEqual(macs);
    // The text output says how many NICs.
    const text = await glint([
      "libvirt",
      "import",
      await domainFile("three-b", ["52:54:00:10:01:01", "52:54:00:10:01:02"]),
    ]);
    expect(text).toContain("  adopted: ");
    expect(text).toMatch(/adopted: .*mac_address, extra_macs/);
    expect(text).toContain("  NICs: 2");
  });

  it("reports a MAC another VM holds, and a repeated one, and draws both fresh", async () => {
    await glint(["create", "holder", "--nics", "2"]);
    const holder = await readIds(home, "holder");
    const held = extraMacsOf(parseIdentifiers(holder, "x", "holder"))[0] as string;
    const file = await domainFile("clash", [
      "52:54:00:20:00:01",
      holder.mac_address,
      "52:54:00:20:00:01",
      held,
      "52:54:00:20:00:05",
    ]);
    const r = await runCli(["libvirt", "import", file, "--home", home]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `glint: warning: extra_macs ${holder.mac_address} of domain "clash" is held by VM "holder"; "clash" got a fresh one`,
    );
    expect(r.stderr).toContain(
      `glint: warning: extra_macs ${held} of domain "clash" is held by VM "holder"; "clash" got a fresh one`,
    );
    expect(r.stderr).toContain(
      `glint: warning: extra_macs "52:54:00:20:00:01" of domain "clash" repeats the MAC of an earlier NIC; drawn fresh`,
    );
    expect(r.stdout).toMatch(/drawn fresh: .*extra_macs/);
    const ids = parseIdentifiers(await readIds(home, "clash"), "x", "clash");
    const extra = extraMacsOf(ids);
    expect(ids.mac_address).toBe("52:54:00:20:00:01");
    expect(extra).toHaveLength(4);
    expect(extra[3]).toBe("52:54:00:20:00:05");
    const all = [ids.mac_address, ...extra];
    expect(new Set(all).size).toBe(5);
    for (const mac of [holder.mac_address, held]) expect(all).not.toContain(mac);
    // The registry agrees: every MAC is the holder's or clash's, none twice.
    const doctor = await runCli(["registry", "check", "--home", home]);
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);
  });

  it("a domain without NICs imports with net none; one with a single ethernet NIC as tap", async () => {
    await glint(["libvirt", "import", await domainFile("nonic", [])]);
    expect(await configOf("nonic")).toMatchObject({ net: "none", nics: 1 });
    expect(readDomain(await glint(["libvirt", "export", "nonic"]), "x").nics).toEqual([]);
    const tap = path.join(dir, "tap.xml");
    const eth = (mac: string) =>
      `<interface type='ethernet'><target dev='tap3' managed='no'/><mac address='${mac}'/></interface>`;
    await fs.writeFile(
      tap,
      `<domain type='kvm'><name>tap</name><devices>${eth("52:54:00:30:00:01")}</devices></domain>`,
    );
    await glint(["libvirt", "import", tap]);
    expect(await configOf("tap")).toMatchObject({ net: "tap", net_ifname: "tap3", nics: 1 });
    // Two ethernet NICs cannot share one tap interface: they become user NICs.
    await fs.writeFile(
      tap,
      `<domain type='kvm'><name>tap2</name><devices>${eth("52:54:00:30:00:02")}${eth("52:54:00:30:00:03")}</devices></domain>`,
    );
    await glint(["libvirt", "import", tap]);
    expect(await configOf("tap2")).toMatchObject({ net: "user", net_ifname: null, nics: 2 });
  });
});

describe("glint libvirt import: values the domain lacks", () => {
  it("are drawn fresh, unique, and the VM is complete", async () => {
    const file = await domainFile(
      "bare",
      ["52:54:00:40:00:01"],
      "<uuid>0b5c1a8e-6f1d-4c8e-9a43-2d4f0e6b7c11</uuid>",
    );
    const r = JSON.parse(await glint(["libvirt", "import", file, "--json"]));
    expect(r.adopted.sort()).toEqual(["mac_address", "vm_uuid"]);
    expect(r.drawn.sort()).toEqual(
      IDENTIFIER_FIELDS.filter((f) => f !== "mac_address" && f !== "vm_uuid").sort(),
    );
    expect(r.nics).toBe(1);
    const ids = await readIds(home, "bare");
    expect(ids.vm_uuid).toBe("0b5c1a8e-6f1d-4c8e-9a43-2d4f0e6b7c11");
    const values = IDENTIFIER_FIELDS.map((f) => ids[f].replaceAll("-", ""));
    expect(new Set(values).size).toBe(values.length);
    // Reserved in the registry like a created VM's, and given to QEMU by `glint run`.
    const check = await runCli(["registry", "check", "--home", home]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const argv = (JSON.parse(await glint(["qemu-args", "bare", "--json"])) as string[]).join(" ");
    expect(argv).toContain(`-uuid ${ids.vm_uuid}`);
    expect(argv).toContain(`guid=${ids.vm_generation_id}`);
    expect(argv).toContain(`type=2,serial=${ids.motherboard_serial}`);
    expect(argv).toContain(`io.systemd.credential:system.machine_id=${ids.machine_id}`);
  });
});
