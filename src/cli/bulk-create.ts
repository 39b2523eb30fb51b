/**
 * `glint create NAME…` and `glint create 'web-{n}' --count N [--start K]`:
 * many VMs through the bulk runner (src/cli/bulk.ts), all or nothing per
 * VM, continuing past failures, then a summary (text) and exit 1 if any
 * failed. New VMs without disk or firmware options are created in batches
 * (UuidManager.createBatched); the others `--jobs` at a time.
 */
import { InvalidArgumentError } from "commander";
import { UsageError } from "../errors.js";
import type { CreateVmOptions, OperationResult, UuidManager } from "../manager.js";
import { forEachVm, resultJson } from "./bulk.js";
import type { CommonOptions } from "./common.js";
import type { Io } from "./io.js";

export interface BulkCreateOptions {
  count?: number;
  start?: number;
  jobs?: number;
}

/** VMs at a time through the batched path (one batch each round). */
const BATCH_JOBS = 1000;

export function parseNonNegative(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a number (0 or more).");
  return Number(value);
}

/**
 * The VM names: the names given (duplicates once), or with `--count` the
 * pattern's `{n}` replaced by start … start+count-1, zero-padded to the
 * width of the largest.
 */
export function expandNames(names: readonly string[], opts: BulkCreateOptions): string[] {
  if (opts.count === undefined) {
    if (opts.start !== undefined) throw new UsageError("--start needs --count");
    const pattern = names.find((n) => n.includes("{n}"));
    if (pattern !== undefined)
      throw new UsageError(`'${pattern}' has {n}: give --count N to create N VMs from it`);
    return [...new Set(names)];
  }
  const [pattern, ...rest] = names;
  if (pattern === undefined || rest.length > 0)
    throw new UsageError("--count takes one name pattern with {n}, e.g. 'web-{n}'");
  if (!pattern.includes("{n}"))
    throw new UsageError(`--count needs {n} in the name pattern, e.g. '${pattern}-{n}'`);
  const start = opts.start ?? 1;
  const width = String(start + opts.count - 1).length;
  return Array.from({ length: opts.count }, (_, i) =>
    pattern.replaceAll("{n}", String(start + i).padStart(width, "0")),
  );
}

export async function bulkCreate(
  io: Io,
  m: UuidManager,
  vms: readonly string[],
  options: CreateVmOptions,
  opts: CommonOptions & BulkCreateOptions,
): Promise<void> {
  const batched = m.canBatch(options);
  let created = 0;
  const started = Date.now();
  const summary = () => {
    if (opts.json) return;
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const failed = vms.length - created;
    io.stdout(
      `created ${created} of ${vms.length} VMs in ${secs} s${failed > 0 ? `; ${failed} failed` : ""}`,
    );
  };
  try {
    await forEachVm<OperationResult>(
      io,
      vms,
      { json: opts.json, jobs: batched ? BATCH_JOBS : (opts.jobs ?? 1) },
      async (vm) => {
        const r = batched ? await m.createBatched(vm, options) : await m.createVm(vm, options);
        created++;
        return r;
      },
      (vm, r) => `${vm}: created (${r.identifiers.vm_uuid}, ${r.identifiers.mac_address})`,
      resultJson,
    );
  } finally {
    summary();
  }
}
