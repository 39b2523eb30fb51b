/** `glint nuke VM…`: every identifier anew; UEFI, Secure Boot, TPM and overlay reset. */
import type { Command } from "commander";
import { POLICIES } from "../../identity/policies.js";
import { describeResets } from "../../ops/reset-steps.js";
import { type BulkOptions, bulkOperands, confirmSet, selectVms } from "../bulk.js";
import { type CliEnv, common } from "../common.js";
import { assertDiscardable, runPolicyOnVms } from "../policy-run.js";

export function addNukeCommand(program: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(program.command("nuke")), true)
    .description("NUKE: regenerate every identifier and reset UEFI, Secure Boot, TPM and overlay")
    .option("--yes", "do not ask for the VM name (or the number of VMs) to be typed back")
    .option("--discard-overlay", "delete the old overlay instead of keeping it in history/")
    .action(async (names: string[], opts: BulkOptions & { discardOverlay?: boolean }) => {
      const m = manager(opts.home);
      const selection = await selectVms(m, names, opts);
      const { vms, bulk } = selection;
      const discardOverlay = Boolean(opts.discardOverlay);
      let resets: string[] = ["UEFI variables", "TPM", "overlay"];
      if (!bulk) {
        const vm = vms[0] ?? "";
        await m.assertExists(vm);
        // Refuse before asking for the name if the VM is running (glint run holds it).
        await m.assertNotBusy(vm);
        const config = await m.getConfig(vm);
        assertDiscardable(vm, config, discardOverlay);
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
      await runPolicyOnVms(io, selection, opts, run, "nuked");
    });
}
