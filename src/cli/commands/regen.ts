/** `glint regen disk|base VM… | --all | --match GLOB`: regenerate part of VMs' identity. */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import { POLICIES } from "../../identity/policies.js";
import { type BulkOptions, bulkOperands, confirmSet, selectVms } from "../bulk.js";
import { type CliEnv, common } from "../common.js";
import { assertDiscardable, runPolicyOnVms } from "../policy-run.js";

type RegenOptions = BulkOptions & { discardOverlay?: boolean };

export function addRegenCommand(program: Command, { io, manager }: CliEnv): void {
  const regen = program
    .command("regen")
    .description("regenerate part of a VM's identity")
    .usage("disk|base <vm...> [options]")
    .argument("[policy]")
    .allowExcessArguments()
    .action((policy: string | undefined) => {
      throw new UsageError(
        `${policy === undefined ? "regen needs a policy" : `unknown policy '${policy}'`}: use \`glint regen disk <vm>\` or \`glint regen base <vm>\``,
      );
    });
  for (const policy of ["disk", "base"] as const) {
    const cmd = common(regen.command(policy))
      .description(`${POLICIES[policy].description} (one VM, several, --all or --match)`)
      // The parent accepts any operands (to name a bad policy); this one takes VM names.
      .allowExcessArguments(false);
    bulkOperands(cmd, true).option("--yes", "do not ask for confirmation");
    // Only `disk` replaces the overlay: `base` keeps it, so the option would mean nothing.
    if (policy === "disk")
      cmd.option("--discard-overlay", "delete the old overlay instead of keeping it in history/");
    cmd.action(async (names: string[], opts: RegenOptions) => {
      const m = manager(opts.home);
      const selection = await selectVms(m, names, opts);
      const { vms, bulk } = selection;
      const discardOverlay = Boolean(opts.discardOverlay);
      let overlayNote = "";
      if (!bulk) {
        const vm = vms[0] ?? "";
        await m.assertExists(vm);
        const config = await m.getConfig(vm);
        assertDiscardable(vm, config, discardOverlay);
        if (policy === "disk" && config.overlay)
          overlayNote = ` Everything the guest wrote to its overlay is discarded${discardOverlay ? " (deleted)" : " (the old overlay is kept in history/)"}.`;
      } else if (policy === "disk")
        overlayNote = ` Overlays are replaced${discardOverlay ? " and the old ones deleted" : " (the old ones are kept in history/)"}.`;
      await confirmSet(
        io,
        (set) =>
          `${policy === "disk" ? "Regenerate the disk identifiers of" : "Regenerate every identifier of"} ${set} and reset ${POLICIES[policy].reset.filter((s) => s !== "guest-files").join(" and ")}?${overlayNote}`,
        vms,
        opts,
        `regen ${policy}`,
      );
      const run = (vm: string, onProgress?: (message: string) => void) =>
        m.regenerate(vm, policy, { discardOverlay, ...(onProgress ? { onProgress } : {}) });
      await runPolicyOnVms(io, selection, opts, run, "regenerated");
    });
  }
}
