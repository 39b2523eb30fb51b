/**
 * Every NIC gets a unique, stable MAC. The VM's own NICs (`--nics N`) and
 * the NICs in extra QEMU arguments (`-nic`, `-net nic`, `-device
 * virtio-net-pci…`) after the first take `extra_macs` in order; a NIC
 * without a MAC at a position the identity has no extra MAC for gets one
 * drawn here, reserved in the registry (unique in the home and every home
 * sharing the registry) and kept in identifiers.json, so that the next run
 * gives it the same one. A MAC given in the arguments that another VM holds
 * is refused. Callers hold the VM's lock to draw.
 */
import { glintError } from "../errors.js";
import { cryptoRandom, newMacAddress, type RandomSource } from "../identity/generate.js";
import {
  EXTRA_MACS,
  extraMacsOf,
  identifiersToDict,
  MAX_EXTRA_MACS,
  parseIdentifiers,
  type SystemIdentifiers,
} from "../identity/model.js";
import { nicMacs } from "../qemu/index.js";
import { registryValue } from "../registry/model.js";
import type { Registry } from "../registry/registry.js";
import { extraNicCount, type VmConfig } from "../vm/config.js";
import { storePaths, type VmPaths } from "../vm/layout.js";
import { withLock } from "../vm/lock.js";
import { writeIdentifiers } from "../vm/store.js";

/** The MAC each NIC of a run is given in its arguments (`undefined`: none), in QEMU's order. */
export function runNicMacs(config: VmConfig, extra: readonly string[]): (string | undefined)[] {
  const own = config.net === "none" ? 0 : extraNicCount(config) + 1;
  return [...Array.from({ length: own }, () => undefined), ...nicMacs(extra)];
}

/** How many extra MACs a run with these NICs needs: up to the last NIC after the first without one. */
export function extraMacsNeeded(macs: readonly (string | undefined)[]): number {
  for (let i = macs.length - 1; i >= 1; i--) if (macs[i] === undefined) return i;
  return 0;
}

/**
 * Refuse a MAC given to a NIC after the first that another VM holds (its MAC
 * or an extra MAC), in this home or any home sharing the registry.
 */
export async function assertOwnMacs(
  registry: Registry,
  vm: string,
  macs: readonly (string | undefined)[],
): Promise<void> {
  for (const mac of macs.slice(1)) {
    if (mac === undefined || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) continue;
    const rows = await registry.ownersOf([registryValue("mac_address", mac.toLowerCase())]);
    const other = rows.find((r) => r.home !== registry.homeId || r.vm !== vm);
    if (other) {
      const owner = other.home === registry.homeId ? other.vm : `${other.home}/${other.vm}`;
      throw glintError(
        "conflict",
        `the NIC MAC ${mac} given for VM "${vm}" belongs to VM "${owner}"; leave out mac= and Glint gives the NIC a unique one`,
        { vm, reason: "mac-taken" },
      );
    }
  }
}

export interface ExtraMacDeps {
  readonly registry: Registry;
  readonly macPrefix: string | undefined;
  readonly random?: RandomSource | undefined;
  readonly storeLockWaitMs: number;
}

/**
 * The identity with at least `count` extra MACs: new ones are drawn, reserved
 * and written into identifiers.json (the caller holds the VM's lock).
 */
export async function ensureExtraMacs(
  deps: ExtraMacDeps,
  paths: VmPaths,
  ids: SystemIdentifiers,
  count: number,
): Promise<SystemIdentifiers> {
  const have = extraMacsOf(ids);
  if (have.length >= count) return ids;
  if (count > MAX_EXTRA_MACS) {
    throw glintError(
      "usage",
      `VM "${paths.name}" would have ${count + 1} NICs; Glint gives MACs to at most ${MAX_EXTRA_MACS + 1}`,
      { vm: paths.name, reason: "too-many-nics" },
    );
  }
  const { registry } = deps;
  const random = deps.random ?? cryptoRandom;
  const mine = new Set([ids.mac_address, ...have]);
  const next = await withLock(
    storePaths(paths.home).lock,
    { purpose: "drawing NIC MACs", waitMs: deps.storeLockWaitMs },
    async () => {
      for (let round = 0; round < 1000; round++) {
        const fresh: string[] = [];
        while (have.length + fresh.length < count) {
          const mac = newMacAddress(random, deps.macPrefix);
          if (mine.has(mac) || fresh.includes(mac)) continue;
          if ((await registry.taken([registryValue(EXTRA_MACS, mac)])).size > 0) continue;
          fresh.push(mac);
        }
        const values = fresh.map((m) => registryValue(EXTRA_MACS, m));
        const refused = await registry.reserve(paths.name, ids.generation, values);
        if (refused.length === 0) return fresh;
        for (const r of refused) mine.add(r.value);
      }
      throw glintError("conflict", `could not draw unique NIC MACs for "${paths.name}"`, {
        vm: paths.name,
        reason: "exhausted",
      });
    },
  );
  const updated = parseIdentifiers(
    {
      ...identifiersToDict(ids),
      [EXTRA_MACS]: [...have, ...next],
      updated_at: new Date().toISOString(),
    },
    paths.identifiers,
    paths.name,
  );
  // A crash before this write leaves reserved rows that no file holds: the
  // next command on the VM gives them back (Registry.reconcile).
  await writeIdentifiers(paths, updated);
  await registry.issue(paths.name, updated).catch(() => {});
  return updated;
}
