/**
 * Preset values (an adopted identity, `glint libvirt import`): each is taken
 * when free, and one that is held (in the store, or by another field of the
 * same identity) is reported and drawn fresh instead.
 */
import { describe, expect, it } from "vitest";
import { IDENTIFIER_FIELDS, type IdentifierField } from "../../src/identity/model.js";
import { POLICIES } from "../../src/identity/policies.js";
import { applyPolicy } from "../../src/identity/regenerate.js";
import { freshIds } from "../support/identity.js";

describe("applyPolicy with preset values", () => {
  it("takes every free preset value", () => {
    const source = freshIds();
    const preset = Object.fromEntries(IDENTIFIER_FIELDS.map((f) => [f, source[f]]));
    const taken: IdentifierField[] = [];
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
    const taken: [IdentifierField, string][] = [];
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
    const taken: IdentifierField[] = [];
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
});
