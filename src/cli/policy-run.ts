/**
 * What `glint nuke` and `glint regen disk|base` share once confirmed: run the
 * policy on one VM (with a spinner, printing its result) or on a set of VMs
 * (one line per VM, or JSON), and the `--discard-overlay` check.
 */
import { UsageError } from "../errors.js";
import type { OperationResult } from "../manager.js";
import type { VmConfig } from "../vm/config.js";
import { type BulkOptions, forEachVm, resultJson } from "./bulk.js";
import { printResult, progress } from "./common.js";
import type { Io } from "./io.js";

/** `--discard-overlay` on a VM without an overlay is a usage error. */
export function assertDiscardable(vm: string, config: VmConfig, discardOverlay: boolean): void {
  if (discardOverlay && !config.overlay)
    throw new UsageError(`--discard-overlay: "${vm}" has no overlay`);
}

/**
 * Run `run` on the selected VMs: a single VM prints its result (with
 * progress), a set reports `<vm>: <done> (generation N)` per VM.
 */
export async function runPolicyOnVms(
  io: Io,
  selection: { readonly vms: readonly string[]; readonly bulk: boolean },
  opts: BulkOptions,
  run: (vm: string, onProgress?: (message: string) => void) => Promise<OperationResult>,
  done: string,
): Promise<void> {
  const { vms, bulk } = selection;
  if (!bulk) {
    printResult(io, await run(vms[0] ?? "", progress(io, opts.json)), opts.json);
    return;
  }
  await forEachVm<OperationResult>(
    io,
    vms,
    opts,
    (vm) => run(vm),
    (vm, r) => `${vm}: ${done} (generation ${r.identifiers.generation})`,
    resultJson,
  );
}
