/** Placing an identity into any QEMU argv (src/qemu/place.ts). */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/index.js";
import { diskSerial, IDENTITY_MAPPING } from "../../src/qemu/mapping.js";
import { applyIdentifiersToQemuCommand } from "../../src/qemu/place.js";
import { identityFromSeed } from "../support/identity.js";
import { optionArgs } from "../support/qemu.js";
import { expectIdentity, oemStrings, smbiosField } from "../support/qemu-argv.js";

const _execFileAsync = promisify(execFile);
const ids = identityFromSeed("argv-a");
const other = identityFromSeed("argv-b");

describe("applyIdentifiersToQemuCommand", () => {
  it("places every identifier exactly once into an empty command", () => {
    const argv = applyIdentifiersToQemuCommand([], ids);
    expectIdentity(argv, ids, false, false);
    expect(argv.slice(0, 2)).toEqual(["-uuid", ids.vm_uuid]);
    expect(optionArgs(argv, "-nic")).toEqual([]);
  });

  it("places every row of IDENTITY_MAPPING", () => {
    const argv = applyIdentifiersToQemuCommand(
      ["-nic", "user", "-device", "virtio-blk-pci,drive=d"],
      ids,
    );
    const joined = argv.join("\n");
    for (const row of IDENTITY_MAPPING) {
      for (const t of row.targets) expect(joined, row.field).toContain(t.derive(ids[row.field]));
    }
  });

  it("replaces an existing identity instead of adding a second one", () => {
    const base = [
      "qemu-system-x86_64",
      "-machine",
      "q35",
      "-uuid",
      other.vm_uuid,
      "-smbios",
      `type=1,manufacturer=Acme,,Inc,serial=OLD,uuid=${other.vm_uuid}`,
      "-smbios",
      "type=2,serial=MBOLD1234",
      "-smbios",
      "type=3,serial=OLD",
      "-smbios",
      "type=4,serial=CPUOLD1234,manufacturer=Intel",
      "-smbios",
      `type=11,value=glint.bios_uuid=${other.bios_uuid},value=user.note=keep,,me`,
      "-smbios",
      `type=11,value=io.systemd.credential:system.machine_id=${other.machine_id}`,
      "-smbios",
      "type=11,value=io.systemd.credential:system.hostname=old",
      "-smbios",
      "type=0,vendor=Glint",
      "-netdev",
      "user,id=n0",
      "-device",
      `virtio-net-pci,netdev=n0,mac=${other.mac_address},id=nic0`,
      "-nic",
      "user,mac=52:54:00:aa:bb:cc",
      "-drive",
      "if=none,id=d0,file=/x.qcow2",
      "-device",
      "virtio-blk-pci,drive=d0,serial=OLDSERIAL",
      "-device",
      "virtio-blk-pci,drive=d1,serial=SECOND",
      "-device",
      `vmgenid,id=vg0,guid=${other.vm_generation_id}`,
      "-device",
      "vmgenid,guid=auto",
    ];
    const argv = applyIdentifiersToQemuCommand(base, ids, { hostname: "web-1" });
    expect(argv[0]).toBe("qemu-system-x86_64");
    expectIdentity(argv, ids, true, true);
    for (const f of IDENTIFIER_FIELDS) expect(argv.join(" "), f).not.toContain(other[f]);
    // Non-Glint SMBIOS fields and OEM strings survive.
    expect(smbiosField(argv, 1, "manufacturer")).toEqual(["Acme,Inc"]);
    expect(smbiosField(argv, 4, "manufacturer")).toEqual(["Intel"]);
    expect(smbiosField(argv, 0, "vendor")).toEqual(["Glint"]);
    expect(oemStrings(argv)).toContain("user.note=keep,me");
    expect(oemStrings(argv).filter((v) => v.includes("system.hostname="))).toEqual([
      "io.systemd.credential:system.hostname=web-1",
    ]);
    // The MAC goes to the first NIC in place; the second NIC keeps its own.
    expect(optionArgs(argv, "-device")).toContain(
      `virtio-net-pci,netdev=n0,mac=${ids.mac_address},id=nic0`,
    );
    expect(optionArgs(argv, "-nic")).toEqual(["user,mac=52:54:00:aa:bb:cc"]);
    // The first virtio-blk device is the system disk; vmgenid keeps its id.
    expect(optionArgs(argv, "-device")).toContain(
      `virtio-blk-pci,drive=d0,serial=${diskSerial(ids.disk_uuid)}`,
    );
    expect(optionArgs(argv, "-device")).toContain("virtio-blk-pci,drive=d1,serial=SECOND");
    expect(optionArgs(argv, "-device").filter((d) => d.startsWith("vmgenid"))).toEqual([
      `vmgenid,id=vg0,guid=${ids.vm_generation_id}`,
    ]);
    expect(optionArgs(argv, "-netdev")).toEqual(["user,id=n0"]);
  });

  it("drops an old hostname credential when no hostname is given", () => {
    const argv = applyIdentifiersToQemuCommand(
      ["-smbios", "type=11,value=io.systemd.credential:system.hostname=old"],
      ids,
    );
    expect(oemStrings(argv).some((v) => v.includes("hostname"))).toBe(false);
  });

  it("sets macaddr= on -net nic and mac= on -nic, JSON -device and e1000", () => {
    const a = applyIdentifiersToQemuCommand(["-net", "nic,model=virtio", "-net", "user"], ids);
    expect(optionArgs(a, "-net")).toEqual([`nic,model=virtio,macaddr=${ids.mac_address}`, "user"]);
    const b = applyIdentifiersToQemuCommand(["-nic", "none", "-device", "e1000,netdev=n"], ids);
    expect(optionArgs(b, "-nic")).toEqual(["none"]);
    expect(optionArgs(b, "-device")[0]).toBe(`e1000,netdev=n,mac=${ids.mac_address}`);
    const c = applyIdentifiersToQemuCommand(
      ["-device", '{"driver":"virtio-net-pci","mac":"52:54:00:00:00:01","netdev":"n"}'],
      ids,
    );
    expect(JSON.parse(optionArgs(c, "-device")[0] as string)).toEqual({
      driver: "virtio-net-pci",
      mac: ids.mac_address,
      netdev: "n",
    });
    const d = applyIdentifiersToQemuCommand(["--nic", "tap,ifname=tap0,script=no"], ids);
    expect(d.slice(0, 2)).toEqual(["--nic", `tap,ifname=tap0,script=no,mac=${ids.mac_address}`]);
  });

  it("does not add a NIC or a disk when there is none", () => {
    const argv = applyIdentifiersToQemuCommand(["-nic", "none", "-netdev", "user,id=n0"], ids);
    expect(argv.join(" ")).not.toContain(ids.mac_address);
    expect(argv.join(" ")).not.toContain(diskSerial(ids.disk_uuid));
  });

  it("keeps arguments that merely look like options", () => {
    const argv = applyIdentifiersToQemuCommand(["-append", "-uuid x console=ttyS0", "-S"], ids);
    expect(argv.slice(0, 3)).toEqual(["-append", "-uuid x console=ttyS0", "-S"]);
  });

  it("rejects malformed identifiers before placing anything", () => {
    const bad: Array<[string, string]> = [
      ["machine_id", `${ids.machine_id},x=y`],
      ["machine_id", "0".repeat(32)],
      ["vm_uuid", `${ids.vm_uuid},serial=evil`],
      ["vm_uuid", ids.vm_uuid.toUpperCase()],
      ["mac_address", "52:54:00:12:34:56,model=e1000"],
      ["mac_address", "00:16:3e:12:34:56"],
      ["mac_address", "03:00:00:12:34:56"],
      ["cpu_serial", "CPUABCD,value=x"],
      ["motherboard_serial", "MBabcd"],
      ["disk_uuid", "not-a-uuid"],
      ["vm_generation_id", "auto"],
      ["bios_uuid", `${ids.bios_uuid}\n`],
    ];
    for (const [field, value] of bad) {
      const evil = { ...ids, [field]: value } as SystemIdentifiers;
      expect(
        () => applyIdentifiersToQemuCommand(["-nic", "user"], evil),
        `${field}=${value}`,
      ).toThrow(GlintError);
      expect(() => applyIdentifiersToQemuCommand([], evil), field).toThrow(new RegExp(field));
    }
    const missing = { ...ids } as Record<string, unknown>;
    delete missing.swap_uuid;
    expect(() =>
      applyIdentifiersToQemuCommand([], missing as unknown as SystemIdentifiers),
    ).toThrow(/swap_uuid/);
  });

  it("rejects malformed hostnames", () => {
    for (const h of ["a,b", "a b", "", "-x", "x".repeat(64), "host=evil"]) {
      expect(() => applyIdentifiersToQemuCommand([], ids, { hostname: h }), h).toThrow(GlintError);
    }
    expect(() =>
      applyIdentifiersToQemuCommand([], ids, { hostname: "db-2.example.org" }),
    ).not.toThrow();
  });

  it("rejects an argv whose last option lacks its argument", () => {
    expect(() => applyIdentifiersToQemuCommand(["-m"], ids)).toThrow(GlintError);
  });
});

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const seedArb = fc.integer({ min: 0, max: 1_000_000 });
const identityArb = seedArb.map((s) => identityFromSeed(s));
const hostnameArb = fc.option(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}(\.[a-z0-9]{1,8})?$/), {
  nil: undefined,
});
/** Option-list text that QEMU could see: letters, separators and escapes. */
const optTextArb = fc.string({
  unit: fc.constantFrom("a", "b", "=", ",", ":", "/", "1"),
  maxLength: 16,
});

/** A fragment of a QEMU command line, including Glint's own options with foreign values. */
const fragmentArb: fc.Arbitrary<readonly string[]> = fc.oneof(
  fc.constantFrom(
    ["-S"],
    ["-snapshot"],
    ["-nographic"],
    ["-no-reboot"],
    ["-enable-kvm"],
    ["-nodefaults"],
  ),
  fc.constantFrom(
    ["-m", "512"],
    ["-machine", "q35"],
    ["-smp", "2"],
    ["-display", "none"],
    ["-name", "x"],
  ),
  fc.constantFrom(["-append", "-uuid x"], ["-append", "-smbios"], ["-kernel", "/boot/vmlinuz"]),
  identityArb.map((o) => ["-uuid", o.vm_uuid]),
  identityArb.map((o) => ["--uuid", o.vm_uuid]),
  fc
    .tuple(
      fc.constantFrom("0", "1", "2", "3", "4", "01", "0x4", "11", "17"),
      optTextArb,
      fc.boolean(),
    )
    .map(([t, rest, serial]) => [
      "-smbios",
      `type=${t}${serial ? ",serial=S" : ""}${rest ? `,${rest}` : ""}`,
    ]),
  identityArb.map((o) => ["-smbios", `type=1,uuid=${o.vm_uuid},serial=X,family=F`]),
  identityArb.map((o) => [
    "-smbios",
    `type=11,value=glint.dmi_uuid=${o.dmi_uuid},value=io.systemd.credential:system.machine_id=${o.machine_id},value=keep=1`,
  ]),
  optTextArb.map((t) => ["-smbios", `type=11,value=${t.replaceAll(",", ",,")}`]),
  fc.constantFrom(["-smbios", "file=/tmp/smbios.bin"], ["-smbios", "type=11,path=/tmp/oem.txt"]),
  fc.constantFrom(
    ["-nic", "user,model=virtio-net-pci"],
    ["-nic", "none"],
    ["-nic", "user,mac=52:54:00:00:00:01,mac=52:54:00:00:00:02"],
    ["-net", "nic,macaddr=52:54:00:00:00:03"],
    ["-net", "user"],
    ["-netdev", "user,id=n0"],
    ["-device", "virtio-net-pci,netdev=n0"],
    ["-device", "e1000,mac=52:54:00:00:00:04"],
    ["-device", '{"driver":"virtio-net-pci","netdev":"n0"}'],
    ["-device", "vmgenid"],
    ["-device", "vmgenid,guid=auto,id=v"],
    ["-device", '{"driver":"vmgenid","id":"v"}'],
    ["-drive", "if=none,id=d,file=/tmp/a,,b.qcow2"],
    ["-device", "virtio-blk-pci,drive=d,serial=OLD"],
    ["-device", "virtio-blk-pci,drive=d2"],
    ["-device", "driver=virtio-blk-pci,drive=d3"],
    ["-device", "{not json"],
  ),
  optTextArb.map((t) => ["-device", t]),
  optTextArb.map((t) => ["-nic", t]),
  fc.constantFrom(["disk.img"], ["-unknown-flag"], ["-unknown-opt", "v"]),
);

const baseArgvArb = fc
  .tuple(fc.boolean(), fc.array(fragmentArb, { maxLength: 14 }))
  .map(([binary, frags]) => [...(binary ? ["qemu-system-x86_64"] : []), ...frags.flat()]);

describe("applyIdentifiersToQemuCommand properties", () => {
  it("is idempotent: apply(apply(x)) equals apply(x)", () => {
    fc.assert(
      fc.property(baseArgvArb, identityArb, hostnameArb, (base, id, hostname) => {
        const once = applyIdentifiersToQemuCommand(base, id, { hostname });
        expect(applyIdentifiersToQemuCommand(once, id, { hostname })).toEqual(once);
      }),
      { numRuns: 400 },
    );
  });

  it("re-identifying replaces the old identity: apply(apply(x, a), b) equals apply(x, b)", () => {
    fc.assert(
      fc.property(baseArgvArb, identityArb, identityArb, hostnameArb, (base, a, b, hostname) => {
        const viaA = applyIdentifiersToQemuCommand(
          applyIdentifiersToQemuCommand(base, a, { hostname: "old" }),
          b,
          { hostname },
        );
        expect(viaA).toEqual(applyIdentifiersToQemuCommand(base, b, { hostname }));
      }),
      { numRuns: 300 },
    );
  });

  it("always yields exactly one -uuid, one vmgenid and the SMBIOS serials, keeps the binary first", () => {
    fc.assert(
      fc.property(baseArgvArb, identityArb, (base, id) => {
        const out = applyIdentifiersToQemuCommand(base, id);
        if (base[0] === "qemu-system-x86_64") expect(out[0]).toBe("qemu-system-x86_64");
        expect(optionArgs(out, "-uuid")).toEqual([id.vm_uuid]);
        const vmgenids = optionArgs(out, "-device").filter((d) =>
          /^vmgenid(,|$)|"driver":"vmgenid"/.test(d),
        );
        expect(vmgenids).toHaveLength(1);
        expect(vmgenids[0]).toContain(id.vm_generation_id);
        expect(smbiosField(out, 2, "serial")).toEqual([id.motherboard_serial]);
        expect(smbiosField(out, 4, "serial")).toEqual([id.cpu_serial]);
        expect(oemStrings(out).filter((v) => v.startsWith("glint.bios_uuid="))).toEqual([
          `glint.bios_uuid=${id.bios_uuid}`,
        ]);
        // The identity's MAC is on exactly one NIC when there is one.
        expect(out.filter((a) => a.includes(id.mac_address)).length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });
});
