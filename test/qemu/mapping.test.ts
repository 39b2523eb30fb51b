import { describe, expect, it } from "vitest";
import { IDENTIFIER_FIELDS } from "../../src/identity/index.js";
import {
  DISK_SERIAL_MAX,
  diskSerial,
  IDENTITY_MAPPING,
  mappingTableMarkdown,
  uuidSerial,
} from "../../src/qemu/mapping.js";
import { identityFromSeed } from "../support/identity.js";

describe("IDENTITY_MAPPING", () => {
  it("has exactly one row per identifier field, in IDENTIFIER_FIELDS order", () => {
    expect(IDENTITY_MAPPING.map((r) => r.field)).toEqual([...IDENTIFIER_FIELDS]);
  });

  it("gives every field at least one target with an option and a guest location", () => {
    for (const row of IDENTITY_MAPPING) {
      expect(row.targets.length, row.field).toBeGreaterThan(0);
      for (const t of row.targets) {
        expect(t.option.length, row.field).toBeGreaterThan(0);
        expect(t.guest, row.field).toMatch(/\/sys\/|\/etc\/|ACPI/);
      }
    }
  });

  it("implements the agreed placements", () => {
    const kinds = Object.fromEntries(
      IDENTITY_MAPPING.map((r) => [r.field, r.targets.map((t) => t.placement)]),
    );
    expect(kinds.vm_uuid).toEqual([{ kind: "uuid" }]);
    expect(kinds.mac_address).toEqual([{ kind: "nic-mac" }]);
    expect(kinds.motherboard_serial).toEqual([{ kind: "smbios-serial", type: 2 }]);
    expect(kinds.cpu_serial).toEqual([{ kind: "smbios-serial", type: 4 }]);
    expect(kinds.vm_generation_id).toEqual([{ kind: "vmgenid" }]);
    expect(kinds.machine_id).toEqual([
      { kind: "oem-string", prefix: "io.systemd.credential:system.machine_id=" },
    ]);
    expect(kinds.disk_uuid?.[0]).toEqual({ kind: "disk-serial" });
    for (const f of [
      "dmi_uuid",
      "smbios_uuid",
      "bios_uuid",
      "partition_uuid",
      "filesystem_uuid",
      "boot_uuid",
      "swap_uuid",
    ]) {
      expect(kinds[f], f).toContainEqual({ kind: "oem-string", prefix: `glint.${f}=` });
    }
  });

  it("derives values that reach the guest unchanged or as documented", () => {
    const ids = identityFromSeed("mapping");
    for (const row of IDENTITY_MAPPING) {
      for (const t of row.targets) {
        const placed = t.derive(ids[row.field]);
        expect(placed).not.toContain(",");
        if (t.placement.kind === "oem-string") {
          expect(placed).toBe(`${t.placement.prefix}${ids[row.field]}`);
        }
      }
    }
  });
});

describe("diskSerial", () => {
  it("is GL + the first 18 hex digits of disk_uuid, uppercase, 20 characters", () => {
    expect(diskSerial("3f2b8c1e-9d4a-4e6f-8a7b-1c2d3e4f5a6b")).toBe("GL3F2B8C1E9D4A4E6F8A");
    for (let i = 0; i < 50; i++) {
      const s = diskSerial(identityFromSeed(i).disk_uuid);
      expect(s).toMatch(/^GL[0-9A-F]{18}$/);
      expect(s.length).toBe(DISK_SERIAL_MAX);
    }
  });

  it("uuidSerial keeps all 32 hex digits", () => {
    expect(uuidSerial("3f2b8c1e-9d4a-4e6f-8a7b-1c2d3e4f5a6b")).toBe(
      "GLINT-3F2B8C1E9D4A4E6F8A7B1C2D3E4F5A6B",
    );
  });
});

describe("mappingTableMarkdown", () => {
  it("is a Markdown table naming every field", () => {
    const md = mappingTableMarkdown();
    const lines = md.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\| Identifier \| QEMU option \| Where a Linux guest reads it \|$/);
    expect(lines[1]).toBe("| --- | --- | --- |");
    for (const line of lines) expect(line.split(/(?<!\\)\|/).length, line).toBe(5);
    for (const field of IDENTIFIER_FIELDS) expect(md).toContain(`| \`${field}\` |`);
    expect(md).toContain("/sys/class/dmi/id/board_serial");
    expect(md).toContain("-device vmgenid,guid=<value>");
  });
});
