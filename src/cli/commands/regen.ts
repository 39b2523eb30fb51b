/** `glint regen disk|base VM`: regenerate part of a VM's identity. */
import type { Command } from "commander";
import { GlintError, UsageError } from "../../errors.js";
import { POLICIES } from "../../identity/policies.js";
import { type CliEnv, type CommonOptions, common, printResult, progress } from "../common.js";
import { confirmYesNo } from "../io.js";

export function addRegenCommand(program: Command, { io, manager }: CliEnv): void {
  const regen = program
    .command("regen")
    .description("regenerate part of a VM's identity")
    .usage("disk|base <vm> [options]")
    .argument("[policy]")
    .allowExcessArguments()
    .action((policy: string | undefined) => {
      throw new UsageError(
        `${policy === undefined ? "regen needs a policy" : `unknown policy '${policy}'`}: use \`glint regen disk <vm>\` or \`glint regen base <vm>\``,
      );
    });
  for (const policy of ["disk", "base"] as const) {
    common(regen.command(policy))
      .description(POLICIES[policy].description)
      .argument("<vm>", "VM name")
      .option("--yes", "do not ask for confirmation")
      .option("--discard-overlay", "delete the old overlay instead of keeping it in history/")
      .action(
        async (vm: string, opts: CommonOptions & { yes?: boolean; discardOverlay?: boolean }) => {
          const m = manager(opts.home);
          await m.assertExists(vm);
          const config = await m.getConfig(vm);
          if (policy === "disk" && config.overlay && !opts.yes) {
            const ok = await confirmYesNo(
              io,
              `Replace the overlay of "${vm}"? Everything the guest wrote to it is discarded${opts.discardOverlay ? " (deleted)" : " (the old overlay is kept in history/)"}.`,
              "--yes",
            );
            if (!ok)
              throw new GlintError("regen disk cancelled; nothing was changed", {
                code: "cancelled",
              });
          }
          const result = await m.regenerate(vm, policy, {
            discardOverlay: Boolean(opts.discardOverlay),
            onProgress: progress(io, opts.json),
          });
          printResult(io, result, opts.json);
        },
      );
  }
}
