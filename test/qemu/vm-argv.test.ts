/** A VM's full QEMU argv (src/qemu/vm-argv.ts). */
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { errorLine } from "../../src/cli/advice.js";
import { GlintError } from "../../src/errors.js";
import { diskSerial } from "../../src/qemu/mapping.js";
import { escapeOptionValue, parseOptionList } from "../../src/qemu/place.js";
import { buildVmArgv } from "../../src/qemu/vm-argv.js";
import { vmPaths } from "../../src/vm/layout.js";
import { identityFromSeed } from "../support/identity.js";
import { config, optionArgs } from "../support/qemu.js";
import { expectIdentity, oemStrings } from "../support/qemu-argv.js";
import { tempDir } from "../support/tmp.js";

const _execFileAsync = promisify(execFile);
const ids = identityFromSeed("argv-a");
const other = identityFromSeed("argv-b");

// ---------------------------------------------------------------------------
// buildVmArgv
// ---------------------------------------------------------------------------

describe("buildVmArgv", () => {
  let home: string;
  beforeAll(async () => {
    home = path.join(await tempDir("glint-argv,comma-"), "home,with,commas");
    const p = vmPaths(home, "demo");
    await mkdir(p.dir, { recursive: true });
    await writeFile(p.base, "");
  });

  it("builds a BIOS VM with user networking and every identifier once", () => {
    const paths = vmPaths(home, "demo");
    const argv = buildVmArgv({
      name: "demo",
      ids,
      config: config({ memory_mb: 768, cpus: 2 }),
      paths,
    });
    expect(argv[0]).toBe("-machine");
    expect(optionArgs(argv, "-machine")).toEqual(["q35"]);
    expect(optionArgs(argv, "-m")).toEqual(["768M"]);
    expect(optionArgs(argv, "-smp")).toEqual(["2"]);
    expect(optionArgs(argv, "-name")).toEqual(["demo"]);
    expect(optionArgs(argv, "-global")).toEqual([]);
    expect(optionArgs(argv, "-nic")).toEqual([`user,model=virtio-net-pci,mac=${ids.mac_address}`]);
    expectIdentity(argv, ids, true, true);
    expect(oemStrings(argv)).toContain("io.systemd.credential:system.hostname=demo");
    // base.qcow2 (config.overlay is false), comma-escaped.
    const drive = optionArgs(argv, "-drive")[0] as string;
    expect(drive).toBe(`if=none,id=disk0,file=${escapeOptionValue(paths.base)},format=qcow2`);
    expect(drive).toContain("home,,with,,commas");
    expect(parseOptionList(drive).find((i) => i.key === "file")?.value).toBe(paths.base);
    expect(optionArgs(argv, "-device")[0]).toBe(
      `virtio-blk-pci,drive=disk0,serial=${diskSerial(ids.disk_uuid)}`,
    );
  });

  it("builds a Secure Boot UEFI VM with TPM, seed ISO and share", () => {
    const paths = vmPaths(home, "demo");
    const fw = {
      code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
      vars: paths.uefiInstance,
      secure: true,
    };
    const argv = buildVmArgv({
      name: "demo",
      ids,
      config: config({
        firmware: "uefi-secure",
        tpm: true,
        tpm_model: "tpm-tis",
        overlay: false,
        net: "bridge",
        net_ifname: "br0",
      }),
      paths,
      firmware: fw,
      tpmSocket: path.join(paths.tpm, "swtpm,sock"),
      seedIso: paths.seedIso,
      shareDir: paths.shared,
      extra: [
        "-uuid",
        other.vm_uuid,
        "-smbios",
        `type=2,serial=${other.motherboard_serial}`,
        "-accel",
        "kvm",
      ],
      hostname: null,
    });
    expect(optionArgs(argv, "-machine")).toEqual(["q35,smm=on"]);
    expect(optionArgs(argv, "-global")).toEqual(["driver=cfi.pflash01,property=secure,value=on"]);
    expect(optionArgs(argv, "-drive")).toEqual([
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
      `if=pflash,format=raw,unit=1,file=${escapeOptionValue(paths.uefiInstance)}`,
      `if=none,id=disk0,file=${escapeOptionValue(paths.base)},format=qcow2`,
      `file=${escapeOptionValue(paths.seedIso)},if=virtio,format=raw,readonly=on`,
    ]);
    expect(optionArgs(argv, "-nic")).toEqual([
      `bridge,br=br0,model=virtio-net-pci,mac=${ids.mac_address}`,
    ]);
    expect(optionArgs(argv, "-chardev")).toEqual([
      `socket,id=chrtpm,path=${escapeOptionValue(path.join(paths.tpm, "swtpm,sock"))}`,
    ]);
    expect(optionArgs(argv, "-tpmdev")).toEqual(["emulator,id=tpm0,chardev=chrtpm"]);
    expect(optionArgs(argv, "-device")).toContain("tpm-tis,tpmdev=tpm0");
    expect(optionArgs(argv, "-fsdev")).toEqual([
      `local,id=glintfs,path=${escapeOptionValue(paths.shared)},security_model=none,readonly=on`,
    ]);
    expect(optionArgs(argv, "-device")).toContain("virtio-9p-pci,fsdev=glintfs,mount_tag=glint");
    expect(optionArgs(argv, "-accel")).toEqual(["kvm"]);
    // extra's identity options were overridden, not duplicated.
    expectIdentity(argv, ids, true, true);
    expect(argv.join(" ")).not.toContain(other.vm_uuid);
    expect(oemStrings(argv).some((v) => v.includes("hostname"))).toBe(false);
  });

  it("uses the overlay when config.overlay, tap and none networking", () => {
    const paths = vmPaths(home, "demo");
    expect(() =>
      buildVmArgv({ name: "demo", ids, config: config({ overlay: true }), paths }),
    ).toThrow(/overlay/);
    // …and the CLI names the command that recreates it.
    let missing: unknown;
    try {
      buildVmArgv({ name: "demo", ids, config: config({ overlay: true }), paths });
    } catch (error) {
      missing = error;
    }
    expect(errorLine(missing as GlintError)).toContain("`glint regen disk demo`");
    const tap = buildVmArgv({
      name: "demo",
      ids,
      config: config({ net: "tap", net_ifname: "tap7" }),
      paths,
      disk: paths.overlay,
    });
    expect(optionArgs(tap, "-nic")).toEqual([
      `tap,ifname=tap7,script=no,downscript=no,model=virtio-net-pci,mac=${ids.mac_address}`,
    ]);
    expect(optionArgs(tap, "-drive")[0]).toContain(`file=${escapeOptionValue(paths.overlay)},`);
    const none = buildVmArgv({
      name: "demo",
      ids,
      config: config({ net: "none" }),
      paths,
      disk: null,
    });
    expect(optionArgs(none, "-nic")).toEqual(["none"]);
    expect(optionArgs(none, "-drive")).toEqual([]);
    expectIdentity(none, ids, false, false);
  });

  it("rejects inconsistent inputs", () => {
    const paths = vmPaths(home, "demo");
    const fw = { code: "/c.fd", vars: "/v.fd", secure: false };
    const cases: Array<[string, () => unknown]> = [
      [
        "bridge without net_ifname",
        () => buildVmArgv({ name: "demo", ids, config: config({ net: "bridge" }), paths }),
      ],
      [
        "tap without net_ifname",
        () => buildVmArgv({ name: "demo", ids, config: config({ net: "tap" }), paths }),
      ],
      [
        "bad ifname",
        () =>
          buildVmArgv({
            name: "demo",
            ids,
            config: { ...config({ net: "tap" }), net_ifname: "t,x=y" },
            paths,
          }),
      ],
      [
        "uefi without firmware",
        () => buildVmArgv({ name: "demo", ids, config: config({ firmware: "uefi" }), paths }),
      ],
      [
        "bios with firmware",
        () => buildVmArgv({ name: "demo", ids, config: config(), paths, firmware: fw }),
      ],
      [
        "secure mismatch",
        () =>
          buildVmArgv({
            name: "demo",
            ids,
            config: config({ firmware: "uefi-secure" }),
            paths,
            firmware: fw,
          }),
      ],
      [
        "tpm without socket",
        () => buildVmArgv({ name: "demo", ids, config: config({ tpm: true }), paths }),
      ],
      [
        "socket without tpm",
        () => buildVmArgv({ name: "demo", ids, config: config(), paths, tpmSocket: "/s" }),
      ],
      ["bad name", () => buildVmArgv({ name: "Demo,x", ids, config: config(), paths })],
      [
        "bad machine-id",
        () =>
          buildVmArgv({
            name: "demo",
            ids: { ...ids, machine_id: `${ids.machine_id},x=y` },
            config: config(),
            paths,
          }),
      ],
      [
        "bad hostname",
        () => buildVmArgv({ name: "demo", ids, config: config(), paths, hostname: "a,b" }),
      ],
      [
        "bad extra",
        () => buildVmArgv({ name: "demo", ids, config: config(), paths, extra: ["-m"] }),
      ],
    ];
    for (const [what, fn] of cases) expect(fn, what).toThrow(GlintError);
  });
});

// ---------------------------------------------------------------------------
// SMBIOS and OEM strings from a template; the OpenStack profile; extra NICs
// ---------------------------------------------------------------------------

describe("a template's SMBIOS strings, OEM strings and NICs", () => {
  let home: string;
  beforeAll(async () => {
    home = await tempDir("glint-argv-smbios-");
  });

  it("SMBIOS strings go to -smbios type=1|2|3 with commas doubled; Glint's serials still win", () => {
    const argv = buildVmArgv({
      name: "ws-1",
      ids,
      paths: vmPaths(home, "ws-1"),
      config: config({
        smbios: {
          system_manufacturer: "Dell Inc.",
          system_product: "Opti,Plex",
          board_manufacturer: "Dell Inc.",
          chassis_asset_tag: "A=1",
        },
        oem_strings: ["Dell System", "x,y"],
      }),
    });
    const smbios = optionArgs(argv, "-smbios");
    expect(smbios).toContain("type=1,manufacturer=Dell Inc.,product=Opti,,Plex");
    expect(smbios).toContain("type=2,manufacturer=Dell Inc.");
    expect(smbios).toContain("type=3,asset=A=1");
    expect(parseOptionList("type=1,manufacturer=Dell Inc.,product=Opti,,Plex")[2]?.value).toBe(
      "Opti,Plex",
    );
    // The extra OEM strings come after Glint's own type 11 table (11-0 stays Glint's).
    const oem = smbios.filter((s) => s.startsWith("type=11"));
    expect(oem).toHaveLength(2);
    expect(oem[1]).toBe("type=11,value=Dell System,value=x,,y");
    expect(oemStrings(argv)).toEqual(expect.arrayContaining(["Dell System", "x,y"]));
    expectIdentity(argv, ids, true, false);
  });

  it("the OpenStack profile: Nova's strings, and the VM UUID as the system serial", () => {
    const argv = buildVmArgv({
      name: "os-1",
      ids,
      paths: vmPaths(home, "os-1"),
      config: config({ cloud: "openstack" }),
    });
    const smbios = optionArgs(argv, "-smbios");
    expect(smbios).toContain(
      "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,family=Virtual Machine",
    );
    expect(smbios).toContain("type=3,asset=OpenStack Nova");
    expect(smbios).toContain(`type=1,serial=${ids.vm_uuid}`);
    expect(smbios).not.toContain(expect.stringMatching(/^type=1,serial=GLINT-/));
  });

  it("refuses a control character that reached the config, and extra NICs off user networking", () => {
    expect(() =>
      buildVmArgv({
        name: "bad",
        ids,
        paths: vmPaths(home, "bad"),
        // As if config.json had been edited by hand past its schema.
        config: { ...config(), smbios: { system_product: "a\nb" } },
      }),
    ).toThrow(GlintError);
    expect(() =>
      buildVmArgv({
        name: "bad",
        ids,
        paths: vmPaths(home, "bad"),
        config: config({ nics: 2, net: "tap", net_ifname: "tap0" }),
      }),
    ).toThrow(/more than one NIC/);
    const two = buildVmArgv({
      name: "two",
      ids,
      paths: vmPaths(home, "two"),
      config: config({ nics: 2 }),
    });
    expect(optionArgs(two, "-nic")).toEqual([
      `user,model=virtio-net-pci,mac=${ids.mac_address}`,
      "user,model=virtio-net-pci",
    ]);
  });
});
