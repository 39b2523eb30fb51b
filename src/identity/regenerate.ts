/**
 * Applies a regeneration policy to an identity, drawing every new value
 * until it is unique in the store.
 */
import { GlintError } from "../errors.js";
import { cryptoRandom, drawIdentifier, type RandomSource, type SerialFormats } from "./generate.js";
import {
  EXTRA_MACS,
  extraMacsOf,
  IDENTIFIER_FIELDS,
  type IdentifierField,
  MAX_EXTRA_MACS,
  MAX_GENERATION,
  SCHEMA_VERSION,
  type SystemIdentifiers,
  sealIdentifiers,
  type ValueField,
} from "./model.js";
import type { Policy } from "./policies.js";

/** The set of values already held in the store (see `UsedValues`). */
export interface ValueSet {
  has(value: string): boolean;
}

export interface RegenerateOptions {
  random?: RandomSource;
  /** The home's MAC prefix (52:54:00 by default). */
  macPrefix?: string;
  /** The VM's serial formats (from its template). */
  serialFormats?: SerialFormats;
  now?: Date;
  /** Upper bound on draws per field before giving up (the space is exhausted). */
  maxAttempts?: number;
  /** Called for every value that was drawn and rejected as a duplicate (for tests and logs). */
  onCollision?: (field: ValueField, value: string) => void;
  /**
   * How many extra NICs the VM has (`--nics N` means N - 1): the identity
   * gets at least this many `extra_macs`. A policy that redraws the MAC
   * redraws every extra MAC too; one that keeps it keeps them.
   */
  extraMacs?: number;
  /**
   * Values to take instead of drawing (an adopted identity, e.g. a libvirt
   * domain's): each is offered first, and one that is held already is
   * reported to `onPresetTaken` and drawn fresh instead.
   */
  preset?: Readonly<Partial<Record<IdentifierField, string>>>;
  /**
   * Extra MACs to take instead of drawing, by position (`undefined`: draw
   * that one); offered like `preset`, for as many extra MACs as the VM gets.
   */
  presetExtraMacs?: readonly (string | undefined)[];
  onPresetTaken?: (field: ValueField, value: string) => void;
}

/**
 * The drawing itself, shared by {@link applyPolicy} and
 * {@link applyPolicyAsync}: yields each candidate value with its field and
 * is sent back whether the store holds it; returns the new identity.
 */
function* draws(
  current: SystemIdentifiers | undefined,
  policy: Policy,
  options: RegenerateOptions,
): Generator<[ValueField, string], SystemIdentifiers, boolean> {
  if (current && current.generation >= MAX_GENERATION) {
    throw new GlintError(
      `generation ${current.generation} is the last one Glint can number; replace the identity with \`glint create <vm> --force\` (it starts again at 1)`,
    );
  }
  const random = options.random ?? cryptoRandom;
  const maxAttempts = options.maxAttempts ?? 10_000;
  const now = (options.now ?? new Date()).toISOString();
  const drawn = new Set<string>();
  const values = {} as Record<IdentifierField, string>;
  // Kept values belong to the new identity too: a new value must differ from them.
  if (current) {
    for (const field of IDENTIFIER_FIELDS) {
      if (!policy.regenerate.includes(field)) drawn.add(current[field].replaceAll("-", ""));
    }
  }
  const keepMacs = current !== undefined && !policy.regenerate.includes("mac_address");
  const keptExtra = keepMacs ? extraMacsOf(current) : [];
  for (const v of keptExtra) drawn.add(v);
  function* drawOne(field: ValueField): Generator<[ValueField, string], string, boolean> {
    let attempt = 0;
    for (;;) {
      const v = drawIdentifier(
        field === EXTRA_MACS ? "mac_address" : field,
        random,
        options.macPrefix,
        options.serialFormats,
      );
      const key = v.replaceAll("-", "");
      if (!drawn.has(key) && !(yield [field, v])) {
        drawn.add(key);
        return v;
      }
      options.onCollision?.(field, v);
      if (++attempt >= maxAttempts) {
        throw new GlintError(
          `could not draw a unique ${field} after ${maxAttempts} attempts: the store's value space is exhausted`,
        );
      }
    }
  }
  for (const field of IDENTIFIER_FIELDS) {
    if (current && !policy.regenerate.includes(field)) {
      values[field] = current[field];
      continue;
    }
    const preset = options.preset?.[field];
    if (preset !== undefined) {
      const key = preset.replaceAll("-", "");
      if (!drawn.has(key) && !(yield [field, preset])) {
        values[field] = preset;
        drawn.add(key);
        continue;
      }
      options.onPresetTaken?.(field, preset);
    }
    values[field] = yield* drawOne(field);
  }
  const extraCount = Math.min(
    MAX_EXTRA_MACS,
    Math.max(options.extraMacs ?? 0, current ? extraMacsOf(current).length : 0),
  );
  const extra = [...keptExtra];
  while (extra.length < extraCount) {
    const preset = options.presetExtraMacs?.[extra.length];
    if (preset !== undefined) {
      if (!drawn.has(preset) && !(yield [EXTRA_MACS, preset])) {
        drawn.add(preset);
        extra.push(preset);
        continue;
      }
      options.onPresetTaken?.(EXTRA_MACS, preset);
    }
    extra.push(yield* drawOne(EXTRA_MACS));
  }
  return sealIdentifiers({
    schema_version: SCHEMA_VERSION,
    ...values,
    generation: current ? current.generation + 1 : 1,
    created_at: current && policy.name === "disk" ? current.created_at : now,
    updated_at: now,
    ...(extra.length > 0 ? { [EXTRA_MACS]: extra } : {}),
  });
}

/**
 * A new identity following `policy`: fields it regenerates are drawn anew
 * (re-drawn while `used` or the new identity itself already has the value),
 * every other field is kept from `current`.
 */
export function applyPolicy(
  current: SystemIdentifiers | undefined,
  policy: Policy,
  used: ValueSet,
  options: RegenerateOptions = {},
): SystemIdentifiers {
  const gen = draws(current, policy, options);
  let step = gen.next(false);
  while (!step.done) step = gen.next(used.has(step.value[1]));
  return step.value;
}

/** {@link applyPolicy} with a store that answers asynchronously (the registry). */
export async function applyPolicyAsync(
  current: SystemIdentifiers | undefined,
  policy: Policy,
  taken: (field: ValueField, value: string) => Promise<boolean>,
  options: RegenerateOptions = {},
): Promise<SystemIdentifiers> {
  const gen = draws(current, policy, options);
  let step = gen.next(false);
  while (!step.done) step = gen.next(await taken(...step.value));
  return step.value;
}
