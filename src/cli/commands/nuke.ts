/** `glint nuke VM`: every identifier anew; UEFI, Secure Boot, TPM and overlay reset. */
import type { Command } from "commander";
import { GlintError } from "../../errors.js";
import { POLICIES } from "../../identity/policies.js";
import { describeResets } from "../../ops/reset-steps.js";
import { type CliEnv, type CommonOptions, common, printResult, progress } from "../common.js";
import { confirmByTyping } from "../io.js";

export function addNukeCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("nuke"))
    .description("NUKE: regenerate every identifier and reset UEFI, Secure Boot, TPM and overlay")
    .argument("<vm>", "VM name")
    .option("--yes", "do not ask for the VM name to be typed back")
    .option("--discard-overlay", "delete the old overlay instead of keeping it in history/")
    .action(
      async (vm: string, opts: CommonOptions & { yes?: boolean; discardOverlay?: boolean }) => {
        const m = manager(opts.home);
        await m.assertExists(vm);
        // Refuse before asking for the name if the VM is running (glint run holds it).
        await m.assertNotBusy(vm);
        if (!opts.yes) {
          const config = await m.getConfig(vm);
          const resets = describeResets(POLICIES.nuke.reset, config, {
            discardOverlay: Boolean(opts.discardOverlay),
          });
          const ok = await confirmByTyping(
            io,
            `This replaces every identifier of "${vm}"${resets.length ? ` and resets ${resets.join(", ")}` : ""}.`,
            vm,
            "--yes",
          );
          if (!ok)
            throw new GlintError("nuke cancelled: the name did not match; nothing was changed", {
              code: "cancelled",
            });
        }
        printResult(
          io,
          await m.nukeAndRegenerateAll(vm, {
            discardOverlay: Boolean(opts.discardOverlay),
            onProgress: progress(io, opts.json),
          }),
          opts.json,
        );
      },
    );
}
