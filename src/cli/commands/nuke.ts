/** `glint nuke VM…`: every identifier anew; UEFI, Secure Boot, TPM and overlay reset. */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import { POLICIES } from "../../identity/policies.js";
import type { OperationResult } from "../../manager.js";
import { describeResets } from "../../ops/reset-steps.js";
import {
  type BulkOptions,
  bulkOperands,
  confirmSet,
  forEachVm,
  resultJson,
  selectVms,
} from "../bulk.js";
import { type CliEnv, common, printResult, progress } from "../common.js";

export function addNukeCommand(program: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(program.command("nuke")), true)
    .description("NUKE: regenerate every identifier and reset UEFI, Secure Boot, TPM and overlay")
    .option("--yes", "do not ask for the VM name (or the number of VMs) to be typed back")
    .option("--discard-overlay", "delete the old overlay instead of keeping it in history/")
    .action(async (names: string[], opts: BulkOptions & { discardOverlay?: boolean }) => {
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts);
      const discardOverlay = Boolean(opts.discardOverlay);
      let resets: string[] = ["UEFI variables", "TPM", "overlay"];
      if (!bulk) {
        const vm = vms[0] ?? "";
        await m.assertExists(vm);
        // Refuse before asking for the name if the VM is running (glint run holds it).
        await m.assertNotBusy(vm);
        const config = await m.getConfig(vm);
        if (discardOverlay && !config.overlay)
          throw new UsageError(`--discard-overlay: "${vm}" has no overlay`);
        resets = describeResets(POLICIES.nuke.reset, config, { discardOverlay });
      }
      await confirmSet(
        io,
        (set) =>
          `This replaces every identifier of ${set}${resets.length ? ` and resets ${resets.join(", ")}` : ""}.`,
        vms,
        { ...opts, typed: true },
        "nuke",
      );
      const run = (vm: string, onProgress?: (message: string) => void) =>
        m.nukeAndRegenerateAll(vm, { discardOverlay, ...(onProgress ? { onProgress } : {}) });
      if (!bulk) {
        printResult(io, await run(vms[0] ?? "", progress(io, opts.json)), opts.json);
        return;
      }
      await forEachVm<OperationResult>(
        io,
        vms,
        opts,
        (vm) => run(vm),
        (vm, r) => `${vm}: nuked (generation ${r.identifiers.generation})`,
        resultJson,
      );
    });
}
