/**
 * Preset values (an adopted identity, `glint libvirt import`): each is taken
 * when free, and one that is held (in the store, or by another field of the
 * same identity) is reported and drawn fresh instead.
 */
import { describe, expect, it } from "vitest";
import { extraMacsOf, IDENTIFIER_FIELDS, type ValueField } from "../../src/identity/model.js";
import { POLICIES } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import { freshIds } from "../support/identity.js";

describe("applyPolicy with preset values", () => {
  it("takes every free preset value", () => {
    const source = freshIds();
    const preset = Object.fromEntries(IDENTIFIER_FIELDS.map((f) => [f, source[f]]));
    const taken: ValueField[] = [];
    const ids = applyPolicy(
      undefined,
      POLICIES.fresh,
      { has: () => false },
      {
        preset,
        onPresetTaken: (f) => taken.push(f),
      },
    );
    for (const f of IDENTIFIER_FIELDS) expect(ids[f], f).toBe(source[f]);
    expect(taken).toEqual([]);
    expect(ids.generation).toBe(1);
  });

  it("reports a held preset value and draws that field fresh; fields without one are drawn", () => {
    const source = freshIds();
    const held = new Set([source.machine_id]);
    const taken: [ValueField, string][] = [];
    const ids = applyPolicy(
      undefined,
      POLICIES.fresh,
      { has: (v) => held.has(v) },
      {
        preset: { vm_uuid: source.vm_uuid, machine_id: source.machine_id },
        onPresetTaken: (f, v) => taken.push([f, v]),
      },
    );
    expect(ids.vm_uuid).toBe(source.vm_uuid);
    expect(ids.machine_id).not.toBe(source.machine_id);
    expect(ids.mac_address).not.toBe(source.mac_address);
    expect(taken).toEqual([["machine_id", source.machine_id]]);
  });

  it("a preset equal to another field's value of the same identity is drawn fresh", () => {
    const source = freshIds();
    const taken: ValueField[] = [];
    const ids = applyPolicy(
      undefined,
      POLICIES.fresh,
      { has: () => false },
      {
        preset: { vm_uuid: source.vm_uuid, dmi_uuid: source.vm_uuid },
        onPresetTaken: (f) => taken.push(f),
      },
    );
    expect(ids.vm_uuid).toBe(source.vm_uuid);
    expect(ids.dmi_uuid).not.toBe(source.vm_uuid);
    expect(taken).toEqual(["dmi_uuid"]);
  });

  it("takes preset extra MACs by position; a held or missing one is drawn fresh", () => {
    const source = freshIds();
    const held = new Set(["52:54:00:00:00:03"]);
    const taken: [ValueField, string][] = [];
    const ids = applyPolicy(
      undefined,
      POLICIES.fresh,
      { has: (v) => held.has(v) },
      {
        preset: { mac_address: source.mac_address },
        extraMacs: 4,
        presetExtraMacs: [
          "52:54:00:00:00:02",
          "52:54:00:00:00:03",
          undefined,
          source.mac_address,
          "52:54:00:00:00:06",
        ],
        onPresetTaken: (f, v) => taken.push([f, v]),
      },
    );
    const extra = extraMacsOf(ids);
    expect(ids.mac_address).toBe(source.mac_address);
    // As many as the VM has NICs after the first: a fifth preset is not used.
    expect(extra).toHaveLength(4);
    expect(extra[0]).toBe("52:54:00:00:00:02");
    expect(new Set([ids.mac_address, ...extra]).size).toBe(5);
    expect(extra).not.toContain("52:54:00:00:00:03");
    expect(extra).not.toContain("52:54:00:00:00:06");
    expect(taken).toEqual([
      ["extra_macs", "52:54:00:00:00:03"],
      ["extra_macs", source.mac_address],
    ]);
  });
});
