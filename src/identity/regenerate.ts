/**
 * Applies a regeneration policy to an identity, drawing every new value
 * until it is unique in the store.
 */
import { GlintError } from "../errors.js";
import { cryptoRandom, drawIdentifier, type RandomSource, type SerialFormats } from "./generate.js";
import {
  IDENTIFIER_FIELDS,
  type IdentifierField,
  MAX_GENERATION,
  SCHEMA_VERSION,
  type SystemIdentifiers,
  sealIdentifiers,
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
  onCollision?: (field: IdentifierField, value: string) => void;
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
): Generator<[IdentifierField, string], SystemIdentifiers, boolean> {
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
  for (const field of IDENTIFIER_FIELDS) {
    if (current && !policy.regenerate.includes(field)) {
      values[field] = current[field];
      continue;
    }
    let attempt = 0;
    for (;;) {
      const v = drawIdentifier(field, random, options.macPrefix, options.serialFormats);
      const key = v.replaceAll("-", "");
      if (!drawn.has(key) && !(yield [field, v])) {
        values[field] = v;
        drawn.add(key);
        break;
      }
      options.onCollision?.(field, v);
      if (++attempt >= maxAttempts) {
        throw new GlintError(
          `could not draw a unique ${field} after ${maxAttempts} attempts: the store's value space is exhausted`,
        );
      }
    }
  }
  return sealIdentifiers({
    schema_version: SCHEMA_VERSION,
    ...values,
    generation: current ? current.generation + 1 : 1,
    created_at: current && policy.name === "disk" ? current.created_at : now,
    updated_at: now,
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
  taken: (field: IdentifierField, value: string) => Promise<boolean>,
  options: RegenerateOptions = {},
): Promise<SystemIdentifiers> {
  const gen = draws(current, policy, options);
  let step = gen.next(false);
  while (!step.done) step = gen.next(await taken(...step.value));
  return step.value;
}
