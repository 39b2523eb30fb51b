/**
 * SharedValues (what `glint doctor` and `glint registry check` find
 * duplicates with): every value two or more VMs hold, with the first
 * holder's field and value as written, every holder once, and nothing for a
 * value one VM holds twice.
 */
import { describe, expect, it } from "vitest";
import { valueKey } from "../../src/vm/registry.js";
import { SharedValues } from "../../src/vm/shared-values.js";

const UUID = "0b7d2c1e-5f3a-4c9b-8d2e-1a2b3c4d5e6f";
const HEX = UUID.replaceAll("-", "");

describe("SharedValues", () => {
  it("reports each value held by two or more VMs, once, with every holder", () => {
    const s = new SharedValues();
    s.add("a", "vm_uuid", UUID, valueKey(UUID));
    s.add("a", "machine_id", HEX, valueKey(HEX)); // the same VM twice: not shared
    s.add("a", "cpu_serial", "CPUAB12CD34", valueKey("CPUAB12CD34"));
    s.add("b", "machine_id", HEX, valueKey(HEX));
    s.add("b", "mac_address", "52:54:00:12:34:56", valueKey("52:54:00:12:34:56"));
    s.add("c", "vm_uuid", UUID, valueKey(UUID));
    s.add("c", "cpu_serial", "CPUAB12CD34", valueKey("CPUAB12CD34"));
    s.add("d", "extra_macs", "52:54:00:12:34:56", valueKey("52:54:00:12:34:56"));
    expect(s.size).toBe(3);
    expect(s.isShared(valueKey(UUID))).toBe(true);
    expect(s.result()).toEqual([
      { field: "vm_uuid", value: UUID, vms: ["a", "b", "c"] },
      { field: "cpu_serial", value: "CPUAB12CD34", vms: ["a", "c"] },
      { field: "mac_address", value: "52:54:00:12:34:56", vms: ["b", "d"] },
    ]);
  });

  it("gives back a first value as it was written, even one its key does not spell", () => {
    const s = new SharedValues();
    const upper = UUID.toUpperCase();
    s.add("a", "disk_uuid", upper, `hex128|${valueKey(upper)}`);
    s.add("b", "disk_uuid", UUID, `hex128|${valueKey(UUID)}`);
    s.add("a2", "machine_id", HEX, `hex128|${valueKey("ffff")}`);
    expect(s.result()).toEqual([{ field: "disk_uuid", value: upper, vms: ["a", "b"] }]);
  });

  it("finds nothing when every value has one holder", () => {
    const s = new SharedValues();
    for (let i = 0; i < 1000; i++) s.add(`vm-${i}`, "vm_uuid", `v${i}`, `v${i}`);
    expect(s.result()).toEqual([]);
    expect(s.size).toBe(1000);
  });
});
