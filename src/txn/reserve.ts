/**
 * Phase 1 of an operation (see engine.ts), under the store lock: draw the
 * new identity, record it in the VM's journal (stage `reserved`), then
 * reserve its new values in the registry in one transaction that checks
 * they were never issued, by any VM on any host sharing the registry. Each
 * value is looked up as it is drawn (a taken one is drawn again); if another
 * host reserves one between the look-up and the reservation, the identity
 * is drawn again; after MAX_ROUNDS the value space counts as exhausted. If the registry fails,
 * the journal is removed: nothing is left.
 */
import { glintError, messageOf } from "../errors.js";
import type { RandomSource, SerialFormats } from "../identity/generate.js";
import type { SystemIdentifiers } from "../identity/model.js";
import type { Policy } from "../identity/policies.js";
import { applyPolicyAsync, type RegenerateOptions } from "../identity/regenerate.js";
import { type RegistryValue, registryValue, slotOf, valuesOf } from "../registry/model.js";
import type { Conflict, Registry } from "../registry/registry.js";
import { fileStamp, indexEntry } from "../registry/vm-index.js";
import { defaultConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { UsedValues } from "../vm/registry.js";
import { readConfigOrDefault } from "../vm/store.js";
import { type PendingOperation, removeJournal, writeJournal } from "./journal.js";

/**
 * Mark a committed identity's values issued. They are issued whatever the
 * registry says: a failure here leaves reserved rows, which hold the values
 * all the same, so it is only told.
 */
export async function markIssued(
  registry: Registry,
  paths: VmPaths,
  ids: SystemIdentifiers,
  notify: (message: string) => void,
): Promise<void> {
  const vm = paths.name;
  const config = await readConfigOrDefault(paths).catch(() => defaultConfig());
  await registry
    .issue(vm, ids, indexEntry(vm, ids, config, await fileStamp(paths.home, vm)))
    .catch((error: unknown) =>
      notify(`the registry did not record "${vm}" as issued (${messageOf(error)})`),
    );
}

/**
 * A value of an interrupted operation's journal that another VM holds: the
 * files first (a copied VM directory brings its journal along), then the
 * registry (other homes and hosts). Recovery is rare: a scan is affordable.
 */
export async function journalConflict(
  registry: Registry,
  vm: string,
  ids: SystemIdentifiers,
): Promise<Conflict | undefined> {
  const used = new UsedValues(registry.home);
  await used.refresh({ force: true });
  return used.conflictsOf(vm, ids)[0] ?? (await registry.conflictsOf(vm, ids))[0];
}

/** Rounds of drawing before giving up: the value space is exhausted. */
export const MAX_ROUNDS = 1000;

export interface DrawOptions {
  readonly paths: VmPaths;
  readonly policy: Policy;
  readonly previous: SystemIdentifiers | undefined;
  readonly registry: Registry;
  readonly random?: RandomSource | undefined;
  readonly macPrefix?: string | undefined;
  /** How many extra NICs the VM's config has (see RegenerateOptions.extraMacs). */
  readonly extraMacs?: number | undefined;
  /** Values to offer before drawing (see RegenerateOptions.preset). */
  readonly preset?: RegenerateOptions["preset"];
  readonly presetExtraMacs?: RegenerateOptions["presetExtraMacs"];
  readonly onPresetTaken?: RegenerateOptions["onPresetTaken"];
  readonly serialFormats?: SerialFormats | undefined;
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
    // Each value is looked up as it is drawn, so that only a taken one is drawn again.
    const identifiers = await applyPolicyAsync(
      o.previous,
      o.policy,
      async (field, value) => {
        const v = registryValue(field, value);
        return excluded.has(v.key) || (await o.registry.taken([v])).size > 0;
      },
      {
        ...(o.random ? { random: o.random } : {}),
        ...(o.macPrefix ? { macPrefix: o.macPrefix } : {}),
        ...(o.extraMacs ? { extraMacs: o.extraMacs } : {}),
        ...(o.preset ? { preset: o.preset } : {}),
        ...(o.presetExtraMacs ? { presetExtraMacs: o.presetExtraMacs } : {}),
        ...(o.onPresetTaken ? { onPresetTaken: o.onPresetTaken } : {}),
        ...(o.serialFormats ? { serialFormats: o.serialFormats } : {}),
      },
    );
    const fresh = newValues(identifiers, o.previous);
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
