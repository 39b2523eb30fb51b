/**
 * Reading a VM for use without changing it (show, qemu-args, run, script,
 * seed): refused while an operation on it is pending — telling one that is
 * still running from one that was interrupted — or while the registry says
 * another VM (of this home or another sharing the registry) holds one of its
 * values.
 */
import { existsSync, promises as fs } from "node:fs";
import { glintError } from "../errors.js";
import type { SystemIdentifiers } from "../identity/model.js";
import { POLICIES } from "../identity/policies.js";
import type { Registry } from "../registry/registry.js";
import { noIdentifiers } from "../txn/engine.js";
import { readJournal } from "../txn/journal.js";
import type { VmConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { lockHolder } from "../vm/lock.js";
import { assertNotRunning } from "../vm/running.js";
import { assertNoForeignSymlinks } from "../vm/safety.js";
import {
  type HistoryEntry,
  listHistory,
  readConfigOrDefault,
  readIdentifiers,
} from "../vm/store.js";

/** Throws a BusyError if another live process holds the VM, or its QEMU runs. */
export async function assertNotBusy(paths: VmPaths): Promise<void> {
  const holder = await lockHolder(paths.lock);
  if (holder) {
    throw glintError(
      "busy",
      `VM "${paths.name}" is busy: process ${holder.pid} holds it for "${holder.purpose}"`,
      { vm: paths.name, ...holder },
    );
  }
  await assertNotRunning(paths);
}

/** Refuse to describe a VM between two identities. */
export async function assertNoPending(paths: VmPaths): Promise<void> {
  const op = await readJournal(paths);
  if (!op) return;
  const operation = POLICIES[op.policy].command;
  const holder = await lockHolder(paths.lock);
  if (holder) {
    throw glintError(
      "busy",
      `VM "${paths.name}" is busy: process ${holder.pid} is changing it ("${holder.purpose}")`,
      { vm: paths.name, ...holder, operation },
    );
  }
  throw glintError("interrupted", `VM "${paths.name}" has an interrupted \`${operation}\``, {
    vm: paths.name,
    file: paths.journal,
    operation,
    reason: op.policy === "fresh" ? "pending-create" : "pending",
  });
}

/** The VM's identity; throws if it has none, or if an operation on it is pending. */
export async function readIdentity(paths: VmPaths): Promise<SystemIdentifiers> {
  await assertNoForeignSymlinks(paths);
  await assertNoPending(paths);
  const ids = await readIdentifiers(paths);
  if (!ids) throw noIdentifiers(paths);
  return ids;
}

export interface UsableVm {
  readonly paths: VmPaths;
  readonly ids: SystemIdentifiers;
  readonly config: VmConfig;
}

/** The identity and config of a VM about to be used, checked against every other VM. */
export async function readUsable(
  paths: VmPaths,
  registry: () => Promise<Registry>,
): Promise<UsableVm> {
  const ids = await readIdentity(paths);
  const clash = (await (await registry()).conflictsOf(paths.name, ids))[0];
  if (clash) {
    throw glintError(
      "conflict",
      `VM "${paths.name}": its ${clash.field} ${clash.value} is also held by VM "${clash.vm}"`,
      { vm: paths.name, reason: "duplicate" },
    );
  }
  return { paths, ids, config: await readConfigOrDefault(paths) };
}

/** Past identities of a VM, oldest first. */
export async function readHistory(paths: VmPaths): Promise<HistoryEntry[]> {
  await fs.lstat(paths.dir).catch(() => {
    throw glintError("not-found", `VM "${paths.name}" does not exist in ${paths.home}`, {
      vm: paths.name,
      reason: "no-vm",
    });
  });
  await assertNoForeignSymlinks(paths);
  return listHistory(paths);
}

/**
 * Throws unless the VM has an identity (or an operation in progress that
 * gives it one): the check a changing command makes before it asks.
 */
export async function assertHasIdentity(paths: VmPaths): Promise<void> {
  // An operation in progress is finished (or rolled back) by the command itself.
  if (!existsSync(paths.journal)) await readIdentity(paths);
}

/** The VM's config.json (defaults if it has none). */
export async function readVmConfig(paths: VmPaths): Promise<VmConfig> {
  await assertNoForeignSymlinks(paths);
  return readConfigOrDefault(paths);
}
