/**
 * Phase 1 of an operation (see engine.ts), under the store lock: draw the
 * new identity, record it in the VM's journal (stage `reserved`), then
 * reserve its new values in the registry in one transaction that checks
 * they were never issued, by any VM on any host sharing the registry. A
 * value someone holds is excluded and the identity drawn again; after
 * MAX_ROUNDS the value space counts as exhausted. If the registry fails,
 * the journal is removed: nothing is left.
 */
import { glintError } from "../errors.js";
import type { RandomSource } from "../identity/generate.js";
import type { SystemIdentifiers } from "../identity/model.js";
import type { Policy } from "../identity/policies.js";
import { applyPolicy } from "../identity/regenerate.js";
import { type RegistryValue, slotOf, valuesOf } from "../registry/model.js";
import type { Registry } from "../registry/registry.js";
import type { VmPaths } from "../vm/layout.js";
import { valueKey } from "../vm/registry.js";
import { type PendingOperation, removeJournal, writeJournal } from "./journal.js";

/** Rounds of drawing before giving up: the value space is exhausted. */
export const MAX_ROUNDS = 1000;

export interface DrawOptions {
  readonly paths: VmPaths;
  readonly policy: Policy;
  readonly previous: SystemIdentifiers | undefined;
  readonly registry: Registry;
  readonly random?: RandomSource | undefined;
  readonly macPrefix?: string | undefined;
  /** The journal entry for a drawn identity. */
  readonly pending: (identifiers: SystemIdentifiers) => PendingOperation;
}

/** The values of `ids` that `previous` does not hold already (those to reserve). */
export function newValues(
  ids: SystemIdentifiers,
  previous: SystemIdentifiers | undefined,
): RegistryValue[] {
  const kept = new Set(valuesOf(previous).map(slotOf));
  return valuesOf(ids).filter((v) => !kept.has(slotOf(v)));
}

/** Draw, journal and reserve; the caller holds the store lock. */
export async function drawAndReserve(o: DrawOptions): Promise<PendingOperation> {
  const excluded = new Set<string>();
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const identifiers = applyPolicy(
      o.previous,
      o.policy,
      { has: (v) => excluded.has(valueKey(v)) },
      {
        ...(o.random ? { random: o.random } : {}),
        ...(o.macPrefix ? { macPrefix: o.macPrefix } : {}),
      },
    );
    const fresh = newValues(identifiers, o.previous);
    const taken = await o.registry.taken(fresh);
    if (taken.size > 0) {
      for (const v of fresh) if (taken.has(slotOf(v))) excluded.add(v.key);
      continue;
    }
    const pending = o.pending(identifiers);
    await writeJournal(o.paths, pending);
    let refused: RegistryValue[];
    try {
      refused = await o.registry.reserve(o.paths.name, identifiers.generation, fresh);
    } catch (error) {
      await removeJournal(o.paths);
      throw error;
    }
    if (refused.length === 0) return pending;
    // Another process or host reserved one of them meanwhile: draw again.
    await removeJournal(o.paths);
    for (const v of refused) excluded.add(v.key);
  }
  throw glintError(
    "conflict",
    `could not draw unique identifiers for "${o.paths.name}" in ${MAX_ROUNDS} rounds: the value space is exhausted`,
    { vm: o.paths.name, reason: "exhausted" },
  );
}
