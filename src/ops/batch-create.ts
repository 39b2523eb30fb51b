/**
 * Bulk creation of new VMs, many at a time (`glint create NAME… | 'web-{n}'
 * --count N` without provisioning options), with one fsync per batch instead
 * of several per VM. All or nothing per VM, and a crash never leaves a VM
 * half-created, nor a registry row without its files or the reverse:
 *
 *   1. under the store lock: draw every VM's identity, write the batch
 *      journal `<home>/.glint/batches/<id>.json` (fsynced) naming each VM and
 *      its values, then reserve them in the registry in one transaction
 *      (each VM all or none; a VM with a value held already is drawn again);
 *   2. build each VM's directory in `<home>/.glint/staging/<id>/<vm>/`
 *      (identifiers.json, and the post-install script and identity.env; the
 *      seed ISO is built at the VM's first `glint run` or by `glint seed`),
 *      flush them with one `sync --file-system`, then rename each directory
 *      into the home (a name that exists by then fails alone), and fsync the
 *      home once;
 *   3. in one registry transaction: mark the values of every VM now in place
 *      issued and index them, give back the others; then delete the journal.
 *
 * The batch holds `<id>.lock` while it runs. A batch whose process is gone
 * is settled by the next process that opens the registry
 * ({@link recoverBatches}): a VM whose directory holds the journal's identity
 * is complete and is issued, every other VM's reservation is given back, and
 * the staging directory is removed.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  promises as fs,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import * as z from "zod";
import { GlintError, glintError, messageOf } from "../errors.js";
import { IDENTITY_ENV_MODE } from "../guest/identity-env.js";
import { loadScript, renderIdentityEnv, SCRIPT_MODE } from "../guest/index.js";
import { runTool } from "../host/tools.js";
import { bufferedCryptoRandom, type RandomSource } from "../identity/generate.js";
import { identifiersToDict, SystemIdentifiers } from "../identity/model.js";
import { POLICIES, type ResetStep } from "../identity/policies.js";
import { applyPolicy } from "../identity/regenerate.js";
import { type BatchItem, valuesOf } from "../registry/model.js";
import type { Registry } from "../registry/registry.js";
import { fileStamp, indexEntry, stampOf } from "../registry/vm-index.js";
import type { OperationResult } from "../txn/engine.js";
import { fsyncDir, writeFileAtomic } from "../vm/atomic.js";
import { defaultConfig } from "../vm/config.js";
import { readFileIfExists, stripBom } from "../vm/fsutil.js";
import { storePaths, VM_FILES, vmPaths } from "../vm/layout.js";
import { acquireLock, lockHolder, withLock } from "../vm/lock.js";
import { valueKey } from "../vm/registry.js";
import { systemError } from "../vm/syserror.js";

export interface BatchContext {
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;
  readonly random?: RandomSource | undefined;
  readonly storeLockWaitMs: number;
  readonly registry: () => Promise<Registry>;
  readonly macPrefix: (registry: Registry) => Promise<string | undefined>;
  /** Write the post-install script and identity.env (the `guest-files` step applies). */
  readonly guestFiles: boolean;
}

export interface BatchOutcome {
  /** Each VM's result, or the error that stopped it (nothing of it was left). */
  readonly done: Map<string, OperationResult | GlintError>;
}

const journalSchema = z.object({
  id: z.string(),
  entries: z.array(z.object({ vm: z.string(), identifiers: z.record(z.string(), z.unknown()) })),
});
type BatchJournal = z.infer<typeof journalSchema>;

/** Rounds of drawing again for VMs whose values were taken meanwhile. */
const MAX_ROUNDS = 50;

function itemOf(vm: string, ids: SystemIdentifiers): BatchItem {
  return { vm, generation: ids.generation, values: valuesOf(ids) };
}

/** A VM's drawn identity and its values as the registry stores them. */
interface Drawn {
  readonly ids: SystemIdentifiers;
  readonly item: BatchItem;
}

function resultOf(vm: string, ids: SystemIdentifiers, guestFiles: boolean): OperationResult {
  const steps: Partial<Record<ResetStep, "done" | "not applicable">> = {};
  for (const step of POLICIES.fresh.reset) steps[step] = "not applicable";
  if (guestFiles) steps["guest-files"] = "done";
  return { vm, policy: "fresh", previous: undefined, identifiers: ids, archived: undefined, steps };
}

/**
 * Draw, journal and reserve under the store lock; returns each VM's
 * identity (VMs the registry refused are drawn again).
 */
async function drawAndReserve(
  ctx: BatchContext,
  registry: Registry,
  journalFile: string,
  journal: BatchJournal,
  names: readonly string[],
): Promise<Map<string, Drawn>> {
  const macPrefix = await ctx.macPrefix(registry);
  const options = {
    random: ctx.random ?? bufferedCryptoRandom(),
    ...(macPrefix ? { macPrefix } : {}),
  };
  const drawnKeys = new Set<string>();
  const used = { has: (v: string) => drawnKeys.has(valueKey(v)) };
  const out = new Map<string, Drawn>();
  let pending = [...names];
  for (let round = 1; pending.length > 0; round++) {
    if (round > MAX_ROUNDS) {
      throw glintError(
        "conflict",
        "could not draw unique identifiers: the value space is exhausted",
        {
          reason: "exhausted",
        },
      );
    }
    const drawn = pending.map((vm): Drawn => {
      const ids = applyPolicy(undefined, POLICIES.fresh, used, options);
      const item = itemOf(vm, ids);
      for (const v of item.values) drawnKeys.add(v.key);
      return { ids, item };
    });
    for (const d of drawn)
      journal.entries.push({ vm: d.item.vm, identifiers: identifiersToDict(d.ids) });
    await writeFileAtomic(journalFile, JSON.stringify(journal));
    const refused = new Set(await registry.reserveMany(drawn.map((d) => d.item)));
    for (const d of drawn) if (!refused.has(d.item.vm)) out.set(d.item.vm, d);
    pending = pending.filter((vm) => refused.has(vm));
  }
  return out;
}

/** Create `names` (none of which exists) as one batch. */
export async function createBatch(
  ctx: BatchContext,
  names: readonly string[],
): Promise<BatchOutcome> {
  const done = new Map<string, OperationResult | GlintError>();
  const sp = storePaths(ctx.home);
  const id = `${process.pid}-${randomBytes(6).toString("hex")}`;
  const journalFile = path.join(sp.batches, `${id}.json`);
  const stage = path.join(sp.staging, id);
  const lock = await acquireLock(path.join(sp.batches, `${id}.lock`), { purpose: "bulk create" });
  try {
    const registry = await ctx.registry();
    const journal: BatchJournal = { id, entries: [] };
    let drawn: Map<string, Drawn>;
    try {
      drawn = await withLock(
        sp.lock,
        { purpose: "drawing identifiers", waitMs: ctx.storeLockWaitMs },
        () => drawAndReserve(ctx, registry, journalFile, journal, names),
      );
    } catch (error) {
      // Nothing was made; what was reserved is given back (or, if the
      // registry is gone, by whoever next finds the journal).
      const err = error instanceof GlintError ? error : new GlintError(messageOf(error));
      await settle(registry, journal, new Map(), new Map()).catch(() => {});
      for (const vm of names) done.set(vm, err);
      return { done };
    }
    const made = new Map<string, Drawn>();
    const stamps = new Map<string, string>();
    try {
      buildStage(stage, drawn, ctx.guestFiles, stamps);
      await runTool("sync", ["--file-system", stage], { env: ctx.env });
      for (const [vm, d] of drawn) {
        try {
          renameSync(`${stage}/${vm}`, `${ctx.home}/${vm}`);
          made.set(vm, d);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          done.set(
            vm,
            code === "ENOTEMPTY" || code === "EEXIST"
              ? glintError("conflict", `VM "${vm}" already exists`, { vm, reason: "exists" })
              : (systemError(error, path.join(ctx.home, vm)) as GlintError),
          );
        }
      }
      await fsyncDir(ctx.home);
    } catch (error) {
      for (const vm of drawn.keys()) {
        if (!made.has(vm) && !done.has(vm))
          done.set(vm, error instanceof GlintError ? error : new GlintError(messageOf(error)));
      }
    }
    try {
      await settle(registry, journal, made, stamps);
    } catch (error) {
      // The VMs are in place; their rows stay reserved until the next
      // process that opens the registry settles this batch (recoverBatches).
      void error;
    }
    for (const [vm, d] of made) done.set(vm, resultOf(vm, d.ids, ctx.guestFiles));
    for (const vm of names) {
      if (!done.has(vm)) done.set(vm, new GlintError(`VM "${vm}" was not created`));
    }
    return { done };
  } finally {
    await fs.rm(stage, { recursive: true, force: true }).catch(() => {});
    await lock.release();
  }
}

/**
 * Write every VM directory of the batch into `stage` (no fsync: the caller
 * syncs once). Synchronous calls: a few small files each, which the page
 * cache takes at once; the thread pool's round trips would cost more.
 */
function buildStage(
  stage: string,
  drawn: ReadonlyMap<string, Drawn>,
  guestFiles: boolean,
  stamps: Map<string, string>,
): void {
  mkdirSync(stage, { recursive: true, mode: 0o700 });
  const script = guestFiles ? loadScript() : "";
  for (const [vm, { ids }] of drawn) {
    // The layout's names (vmPaths would build every path of the VM).
    const dir = `${stage}/${vm}`;
    mkdirSync(dir);
    const fd = openSync(`${dir}/${VM_FILES.identifiers}`, "wx", 0o644);
    try {
      writeSync(fd, SystemIdentifiers.toJSON(ids));
      // A rename keeps the mtime: the stamp list checks (IndexEntry.stamp).
      stamps.set(vm, stampOf(fstatSync(fd)));
    } finally {
      closeSync(fd);
    }
    if (guestFiles) {
      const shared = `${dir}/${VM_FILES.shared}`;
      mkdirSync(shared);
      writeFileSync(`${shared}/${VM_FILES.identityEnv}`, renderIdentityEnv(vm, ids), {
        mode: IDENTITY_ENV_MODE,
        flag: "wx",
      });
      writeFileSync(`${shared}/${VM_FILES.script}`, script, { mode: SCRIPT_MODE, flag: "wx" });
    }
  }
}

/**
 * Settle a batch in one registry transaction: the VMs in `made` are issued
 * and indexed, every other entry's reservation is given back; then the
 * journal is removed.
 */
async function settle(
  registry: Registry,
  journal: BatchJournal,
  made: ReadonlyMap<string, Drawn>,
  stamps: ReadonlyMap<string, string>,
): Promise<void> {
  const config = defaultConfig();
  const issued = [...made].map(([vm, d]) => ({
    ...d.item,
    entry: indexEntry(vm, d.ids, config, stamps.get(vm) ?? ""),
  }));
  const released = journal.entries
    .filter((e) => made.get(e.vm)?.ids.vm_uuid !== e.identifiers.vm_uuid)
    .map((e) => ({ vm: e.vm, generation: 1, values: valuesOf(e.identifiers) }));
  await registry.settleMany(issued, released);
  await fs.rm(path.join(storePaths(registry.home).batches, `${journal.id}.json`), { force: true });
}

/** The identity in a VM's identifiers.json, if it is a valid one. */
async function identityIn(home: string, vm: string): Promise<SystemIdentifiers | undefined> {
  try {
    const raw = await readFileIfExists(vmPaths(home, vm).identifiers);
    return raw === undefined ? undefined : SystemIdentifiers.parse(JSON.parse(stripBom(raw)));
  } catch {
    return undefined;
  }
}

/**
 * Settle every batch whose process is gone (see the top of this file).
 * Returns how many were settled.
 */
export async function recoverBatches(registry: Registry, storeLockWaitMs: number): Promise<number> {
  const sp = storePaths(registry.home);
  const files = await fs.readdir(sp.batches).catch(() => [] as string[]);
  let settled = 0;
  for (const name of files.filter((f) => f.endsWith(".json"))) {
    const id = name.slice(0, -5);
    const lockFile = path.join(sp.batches, `${id}.lock`);
    if (await lockHolder(lockFile)) continue; // still running
    await withLock(
      sp.lock,
      { purpose: "settling a bulk create", waitMs: storeLockWaitMs },
      async () => {
        const raw = await readFileIfExists(path.join(sp.batches, name));
        if (raw === undefined) return; // settled meanwhile
        const parsed = journalSchema.safeParse(JSON.parse(stripBom(raw)));
        if (!parsed.success) {
          throw glintError(
            "invalid-file",
            `${path.join(sp.batches, name)} is not a batch journal`,
            {
              file: path.join(sp.batches, name),
            },
          );
        }
        const made = new Map<string, Drawn>();
        const stamps = new Map<string, string>();
        for (const e of parsed.data.entries) {
          const ids = await identityIn(registry.home, e.vm);
          if (ids && ids.vm_uuid === e.identifiers.vm_uuid) {
            made.set(e.vm, { ids, item: itemOf(e.vm, ids) });
            stamps.set(e.vm, await fileStamp(registry.home, e.vm));
          }
        }
        await settle(registry, parsed.data, made, stamps);
        await fs.rm(path.join(sp.staging, id), { recursive: true, force: true });
        await fs.rm(lockFile, { force: true });
        settled++;
      },
    );
  }
  return settled;
}
