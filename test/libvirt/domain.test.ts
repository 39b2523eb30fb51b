/**
 * The domain XML: built from typed inputs with every value escaped, valid
 * for libvirt's own schema (virt-xml-validate), read back to the same
 * identity, and patched by sync without losing what the user added.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { SystemIdentifiers } from "../../src/identity/model.js";
import {
  buildDomain,
  type DomainInput,
  domainXml,
  patchDomain,
  readDomain,
} from "../../src/libvirt/index.js";
import { adoptable, adoptableExtraMacs } from "../../src/libvirt/read.js";
import { renderXml } from "../../src/libvirt/xml.js";
import { diskSerial } from "../../src/qemu/mapping.js";
import { run } from "../support/exec.js";
import { freshIds } from "../support/identity.js";
import { config } from "../support/qemu.js";
import { tempDir } from "../support/tmp.js";

function input(over: Partial<DomainInput> = {}, ids: SystemIdentifiers = freshIds()): DomainInput {
  return {
    name: "web-1",
    vm: "web-1",
    ids,
    config: config(),
    type: "qemu",
    emulator: "/usr/bin/qemu-system-x86_64",
    disk: "/srv/vms/web-1/overlay.qcow2",
    seedIso: "/srv/vms/web-1/seed.iso",
    shareDir: "/srv/vms/web-1/shared",
    hostname: "web-1",
    ...over,
  };
}

async function validate(xml: string): Promise<{ code: number | null; out: string }> {
  const dir = await tempDir("glint-libvirt-xml-");
  const file = path.join(dir, "d.xml");
  await fs.writeFile(file, xml);
  const r = await run("virt-xml-validate", [file, "domain"]);
  return { code: r.code, out: r.stdout + r.stderr };
}

describe("buildDomain", () => {
  it("passes virt-xml-validate for BIOS, UEFI, Secure Boot with TPM, bridge, tap and extra NICs", async () => {
    const variants: DomainInput[] = [
      input(),
      input({
        config: config({ firmware: "uefi", tpm: true }),
        firmware: {
          code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
          vars: "/v/uefi-instance.fd",
          secure: false,
        },
      }),
      input({
        config: config({ firmware: "uefi-secure", tpm: true, tpm_model: "tpm-tis" }),
        firmware: {
          code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
          vars: "/v/uefi-instance.fd",
          secure: true,
        },
        type: "kvm",
      }),
      input({ config: config({ net: "bridge", net_ifname: "br0" }) }),
      input({ config: config({ net: "tap", net_ifname: "tap7" }) }),
      input({
        config: config({ net: "bridge", net_ifname: "br0", nics: 3 }),
        extraMacs: ["52:54:00:00:00:02", "52:54:00:00:00:03"],
      }),
      input({ config: config({ net: "none" }) }),
      input({
        config: config({
          cloud: "openstack",
          smbios: {
            system_version: "2.1",
            board_manufacturer: "Acme & Co",
            chassis_manufacturer: "A",
          },
          oem_strings: ["site=berlin"],
        }),
      }),
    ];
    for (const v of variants) {
      const r = await validate(domainXml(v));
      expect(r.code, r.out).toBe(0);
    }
  });

  it("carries every identity value where the guest reads it", () => {
    const ids = freshIds();
    const xml = domainXml(
      input(
        {
          config: config({ firmware: "uefi-secure", tpm: true, nics: 2 }),
          firmware: { code: "/c.fd", vars: "/v/uefi-instance.fd", secure: true },
          extraMacs: ["52:54:00:aa:bb:cc"],
        },
        ids,
      ),
    );
    const hex = (u: string) => `GLINT-${u.replaceAll("-", "").toUpperCase()}`;
    expect(xml).toContain(`<uuid>${ids.vm_uuid}</uuid>`);
    expect(xml).toContain(`<genid>${ids.vm_generation_id}</genid>`);
    expect(xml).toContain(`<entry name='serial'>${hex(ids.smbios_uuid)}</entry>`);
    expect(xml).toContain(`<entry name='serial'>${ids.motherboard_serial}</entry>`);
    expect(xml).toContain(`<entry name='serial'>${hex(ids.dmi_uuid)}</entry>`);
    expect(xml).toContain(`<entry name='asset'>${ids.dmi_uuid}</entry>`);
    expect(xml).toContain(
      `<entry>io.systemd.credential:system.machine_id=${ids.machine_id}</entry>`,
    );
    expect(xml).toContain("<entry>io.systemd.credential:system.hostname=web-1</entry>");
    expect(xml).toContain(`<entry>glint.bios_uuid=${ids.bios_uuid}</entry>`);
    expect(xml).toContain("<smbios mode='sysinfo'/>");
    expect(xml).toContain("<loader readonly='yes' secure='yes' type='pflash'>/c.fd</loader>");
    expect(xml).toContain("<nvram>/v/uefi-instance.fd</nvram>");
    expect(xml).toContain("<smm state='on'/>");
    expect(xml).toContain("<backend type='emulator' version='2.0'/>");
    expect(xml).toContain(`<mac address='${ids.mac_address}'/>`);
    expect(xml).toContain("<mac address='52:54:00:aa:bb:cc'/>");
    expect(xml).toContain(`<serial>${diskSerial(ids.disk_uuid)}</serial>`);
    expect(xml).toContain(`<qemu:arg value='type=4,serial=${ids.cpu_serial}'/>`);
  });

  it("carries the VM's SMBIOS strings and extra OEM strings as `glint run` gives them", () => {
    const ids = freshIds();
    const xml = domainXml(
      input(
        {
          config: config({
            smbios: {
              system_manufacturer: "Acme, Inc.",
              system_product: "Box",
              system_version: "2",
              system_family: "Fam",
              board_manufacturer: "Board Co",
              chassis_manufacturer: "Chassis Co",
              chassis_asset_tag: "ASSET-7",
            },
            oem_strings: ["site=berlin"],
          }),
        },
        ids,
      ),
    );
    for (const [name, value] of [
      ["manufacturer", "Acme, Inc."],
      ["product", "Box"],
      ["version", "2"],
      ["family", "Fam"],
      ["manufacturer", "Board Co"],
      ["manufacturer", "Chassis Co"],
      ["asset", "ASSET-7"],
    ]) {
      expect(xml).toContain(`<entry name='${name}'>${value}</entry>`);
    }
    expect(xml).not.toContain(`<entry name='asset'>${ids.dmi_uuid}</entry>`);
    // Glint's OEM strings first, then the VM's own.
    expect(xml).toMatch(
      /<entry>glint\.[^<]+<\/entry>\s*<entry>site=berlin<\/entry>\s*<\/oemStrings>/,
    );
    // The OpenStack profile: Nova's strings, the instance UUID as system serial, the config drive.
    const os = domainXml(
      input({ config: config({ cloud: "openstack" }), seedIso: "/v/config-drive.iso" }, ids),
    );
    expect(os).toContain("<entry name='manufacturer'>OpenStack Foundation</entry>");
    expect(os).toContain("<entry name='product'>OpenStack Nova</entry>");
    expect(os).toContain("<entry name='asset'>OpenStack Nova</entry>");
    expect(os).toContain(`<entry name='serial'>${ids.vm_uuid}</entry>`);
    expect(os).toContain("<source file='/v/config-drive.iso'/>");
    // The identity still reads back whole (smbios_uuid from its OEM string).
    const { preset } = adoptable(readDomain(os, "os").found);
    expect(preset.smbios_uuid).toBe(ids.smbios_uuid);
  });

  it("gives each of the VM's own NICs an interface, in order, with its MAC", () => {
    const ids = freshIds();
    const extra = ["52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"];
    const macsOf = (xml: string) => readDomain(xml, "x").nics.map((n) => n.mac);
    // config.nics decides: extra MACs beyond it (NICs of extra QEMU arguments) are not NICs here.
    const three = domainXml(input({ config: config({ nics: 3 }), extraMacs: extra }, ids));
    expect(macsOf(three)).toEqual([ids.mac_address, extra[0], extra[1]]);
    expect(readDomain(three, "x").nics.map((n) => n.type)).toEqual(["user", "user", "user"]);
    expect(macsOf(domainXml(input({ extraMacs: extra }, ids)))).toEqual([ids.mac_address]);
    expect(macsOf(domainXml(input({ config: config({ net: "none" }), extraMacs: extra })))).toEqual(
      [],
    );
    expect(() =>
      domainXml(input({ config: config({ nics: 3 }), extraMacs: [extra[0] as string] })),
    ).toThrow(/has 3 NICs but MACs for only 2: run `glint edit web-1 --nics 3`/);
  });

  it("escapes every path and refuses names that are not domain names", () => {
    const odd = "/srv/a'b\"c<d>&e/overlay.qcow2";
    const xml = domainXml(input({ disk: odd }));
    expect(xml).toContain("/srv/a&apos;b&quot;c&lt;d&gt;&amp;e/overlay.qcow2");
    expect(readDomain(xml, "x").disks[0]?.path).toBe(odd);
    expect(() => domainXml(input({ name: "a b" }))).toThrow(/invalid libvirt domain name/);
    expect(() => domainXml(input({ name: "x'/><evil" }))).toThrow(/invalid libvirt domain name/);
    expect(() => domainXml(input({ disk: "/a\u0001b" }))).toThrow(/control character/);
  });
});

describe("readDomain", () => {
  it("reads back the identity it was built from", () => {
    const ids = freshIds();
    const facts = readDomain(
      domainXml(
        input(
          {
            config: config({ firmware: "uefi", tpm: true, memory_mb: 768, cpus: 2 }),
            firmware: { code: "/c.fd", vars: "/v/nv.fd", secure: false },
          },
          ids,
        ),
      ),
      "test",
    );
    const { preset, rejected } = adoptable(facts.found);
    expect(rejected).toEqual([]);
    for (const [field, value] of Object.entries(preset)) {
      expect(value, field).toBe(ids[field as keyof SystemIdentifiers]);
    }
    expect(Object.keys(preset).sort()).toHaveLength(14);
    expect(facts.loader).toEqual({ path: "/c.fd", secure: false });
    expect(facts.efi).toEqual({ secure: false });
    expect(facts.nvram?.path).toBe("/v/nv.fd");
    expect(facts.tpm).toEqual({ model: "tpm-crb", backend: "emulator" });
    expect(facts.memoryMb).toBe(768);
    expect(facts.cpus).toBe(2);
  });

  it("rejects malformed XML and other documents with one line", () => {
    expect(() => readDomain("<domain><name>x</domain>", "f.xml")).toThrow(
      /^f\.xml is not well-formed XML: .*\(line 1\)$/,
    );
    expect(() => readDomain("<network><name>x</name></network>", "f.xml")).toThrow(
      /not a libvirt domain/,
    );
    expect(() => readDomain("<domain/>", "f.xml")).toThrow(/has no <name>/);
  });

  it("keeps values not in Glint's formats out of the adopted identity", () => {
    const xml = `<domain type='kvm'><name>d</name><uuid>00000000-0000-1000-8000-000000000001</uuid>
      <sysinfo type='smbios'><baseBoard><entry name='serial'>Board 1</entry></baseBoard></sysinfo>
      <devices><interface type='network'><mac address='52:54:00:12:34:56'/></interface></devices></domain>`;
    const { preset, rejected } = adoptable(readDomain(xml, "d").found);
    expect(preset).toEqual({ mac_address: "52:54:00:12:34:56" });
    expect(rejected.map((r) => r.field).sort()).toEqual(["motherboard_serial", "vm_uuid"]);
  });

  it("reads every NIC's MAC: the first as mac_address, the others as extra_macs in order", () => {
    const xml = `<domain type='kvm'><name>d</name><devices>
      <interface type='network'><mac address='52:54:00:00:00:01'/></interface>
      <interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:02'/></interface>
      <interface type='network'><mac address='52:54:00:00:00:03'/></interface>
      </devices></domain>`;
    const facts = readDomain(xml, "d");
    expect(adoptable(facts.found).preset).toEqual({ mac_address: "52:54:00:00:00:01" });
    expect(adoptableExtraMacs(facts.nics)).toEqual({
      extra: ["52:54:00:00:00:02", "52:54:00:00:00:03"],
      rejected: [],
    });
  });

  it("draws fresh the extra MACs that are missing, not in Glint's format, or repeated", () => {
    const nic = (mac?: string) => ({ type: "network", mac, ifname: undefined });
    const r = adoptableExtraMacs([
      nic("52:54:00:00:00:01"),
      nic(undefined),
      nic("00:16:3e:00:00:01"),
      nic("52:54:00:00:00:01"),
      nic("52:54:00:00:00:05"),
      nic("52:54:00:00:00:05"),
    ]);
    expect(r.extra).toEqual([undefined, undefined, undefined, "52:54:00:00:00:05", undefined]);
    expect(r.rejected.map((x) => [x.field, x.value, x.why.slice(0, 20)])).toEqual([
      ["extra_macs", "00:16:3e:00:00:01", "must be a lowercase,"],
      ["extra_macs", "52:54:00:00:00:01", "repeats the MAC of a"],
      ["extra_macs", "52:54:00:00:00:05", "repeats the MAC of a"],
    ]);
  });

  it("reads UEFI from <os firmware='efi'> with Secure Boot, without an explicit loader", () => {
    const xml = `<domain type='kvm'><name>d</name><os firmware='efi'><type>hvm</type>
      <firmware><feature enabled='yes' name='secure-boot'/></firmware></os></domain>`;
    const facts = readDomain(xml, "d");
    expect(facts.loader).toBeUndefined();
    expect(facts.efi).toEqual({ secure: true });
    expect(readDomain("<domain><name>b</name><os><type>hvm</type></os></domain>", "b").efi).toBe(
      undefined,
    );
  });
});

describe("patchDomain", () => {
  it("replaces the identity and keeps everything else", async () => {
    const before = freshIds();
    const after = freshIds();
    const current = renderXml(buildDomain(input({}, before)))
      .replace("<boot dev='hd'/>", "<kernel>/boot/vmlinuz</kernel><boot dev='hd'/>")
      .replace(
        "<emulator>",
        "<serial type='file'><source path='/tmp/console.log'/></serial><emulator>",
      );
    const next = patchDomain(current, buildDomain(input({}, after)), "test");
    expect(next).toContain("<kernel>/boot/vmlinuz</kernel>");
    expect(next).toContain("<source path='/tmp/console.log'/>");
    const { preset } = adoptable(readDomain(next, "next").found);
    for (const [field, value] of Object.entries(preset)) {
      expect(value, field).toBe(after[field as keyof SystemIdentifiers]);
    }
    expect(next).not.toContain(before.cpu_serial);
    expect(next.match(/type=4,serial=/g)).toHaveLength(1);
    // Idempotent.
    expect(patchDomain(next, buildDomain(input({}, after)), "test")).toBe(next);
    expect((await validate(next)).code).toBe(0);
  });

  it("writes every NIC's MAC, keeping the interfaces' other settings", () => {
    const before = freshIds();
    const after = freshIds();
    const nics3 = config({ nics: 3 });
    const current = renderXml(
      buildDomain(
        input({ config: nics3, extraMacs: ["52:54:00:00:00:02", "52:54:00:00:00:03"] }, before),
      ),
    ).replaceAll("<model type='virtio'/>", "<model type='e1000e'/>");
    const next = patchDomain(
      current,
      buildDomain(
        input({ config: nics3, extraMacs: ["52:54:00:00:00:12", "52:54:00:00:00:13"] }, after),
      ),
      "test",
    );
    expect(readDomain(next, "next").nics.map((n) => n.mac)).toEqual([
      after.mac_address,
      "52:54:00:00:00:12",
      "52:54:00:00:00:13",
    ]);
    expect(next.match(/<model type='e1000e'\/>/g)).toHaveLength(3);
  });
});
