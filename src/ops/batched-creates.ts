/**
 * Creates batched with the other calls made at the same moment (`glint
 * create NAME… | --count`): a new VM without provisioning options and
 * without `forceRegenerate` goes through the bulk path of batch-create.ts
 * (one fsync per batch); any other, and a name that exists already, through
 * the ordinary create.
 */
import { existsSync } from "node:fs";
import { diffFields, type HomeAudit } from "../audit/index.js";
import type { RandomSource } from "../identity/generate.js";
import { identifiersToDict } from "../identity/model.js";
import type { Registry } from "../registry/registry.js";
import type { OperationResult } from "../txn/engine.js";
import { type VmPaths, vmDir } from "../vm/layout.js";
import { createBatch } from "./batch-create.js";
import { Batcher } from "./batcher.js";
import type { CreateVmOptions } from "./create.js";
import { hasProvisioningOptions } from "./provision.js";

export interface BatchedCreatesDeps {
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;
  readonly random: RandomSource | undefined;
  readonly storeLockWaitMs: number;
  readonly registry: () => Promise<Registry>;
  readonly macPrefix: (registry: Registry) => Promise<string | undefined>;
  readonly audit: HomeAudit;
  readonly paths: (vm: string) => VmPaths;
  /** The ordinary create. */
  readonly createVm: (vm: string, options?: CreateVmOptions) => Promise<OperationResult>;
  /** The steps a fresh identity runs in this manager: batching needs only `guest-files`. */
  readonly freshSteps: () => readonly string[];
}

export class BatchedCreates {
  private batcher: Batcher<OperationResult> | undefined;

  constructor(private readonly d: BatchedCreatesDeps) {}

  /** Whether creates with `options` can take the batched path. */
  canBatch(options: CreateVmOptions = {}): boolean {
    return (
      !options.forceRegenerate &&
      !hasProvisioningOptions(options) &&
      this.d.freshSteps().every((s) => s === "guest-files")
    );
  }

  create(vm: string, options: CreateVmOptions = {}): Promise<OperationResult> {
    vmDir(this.d.home, vm); // a bad name fails here, alone
    if (!this.canBatch(options)) return this.d.createVm(vm, options);
    const guestFiles = this.d.freshSteps().includes("guest-files");
    this.batcher ??= new Batcher((names) => this.run(names, guestFiles));
    return this.batcher.add(vm);
  }

  private async run(
    names: readonly string[],
    guestFiles: boolean,
  ): Promise<Map<string, OperationResult | Error>> {
    const out = new Map<string, OperationResult | Error>();
    const fresh: string[] = [];
    for (const vm of names) {
      if (existsSync(vmDir(this.d.home, vm)))
        out.set(vm, await this.d.createVm(vm).catch((e: Error) => e));
      else fresh.push(vm);
    }
    if (fresh.length === 0) return out;
    const { done } = await createBatch(
      {
        home: this.d.home,
        env: this.d.env,
        random: this.d.random,
        storeLockWaitMs: this.d.storeLockWaitMs,
        registry: this.d.registry,
        macPrefix: this.d.macPrefix,
        guestFiles,
      },
      fresh,
    );
    const records: { vm: string; operation: string; changes: ReturnType<typeof diffFields> }[] = [];
    for (const [vm, r] of done) {
      out.set(vm, r);
      if (!(r instanceof Error))
        records.push({
          vm,
          operation: "create",
          changes: diffFields(undefined, identifiersToDict(r.identifiers)),
        });
    }
    // The batch path has no per-VM journal: its records follow the commit,
    // all in one append (a crash in between leaves those VMs without their
    // create record).
    await this.d.audit.appendMany(records);
    return out;
  }
}
