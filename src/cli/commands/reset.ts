/** `glint reset uefi|tpm VM`: reset a VM's firmware state. */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import { type CliEnv, type CommonOptions, common, progress } from "../common.js";

export function addResetCommand(program: Command, { io, manager }: CliEnv): void {
  const reset = program
    .command("reset")
    .description("reset a VM's firmware state")
    .usage("uefi|tpm <vm> [options]")
    .argument("[target]")
    .allowExcessArguments()
    .action((target: string | undefined) => {
      throw new UsageError(
        `${target === undefined ? "reset needs a target" : `unknown target '${target}'`}: use \`glint reset uefi <vm>\` or \`glint reset tpm <vm>\``,
      );
    });
  common(reset.command("uefi"))
    .description("replace the VM's UEFI variables with a fresh copy (old ones kept in history/)")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      await manager(opts.home).resetUefiVariables(vm);
      io.stdout(
        opts.json ? JSON.stringify({ vm, reset: "uefi" }) : `UEFI variables of "${vm}" reset`,
      );
    });
  common(reset.command("tpm"))
    .description(
      "wipe the VM's TPM and manufacture a new one with a new EK (old state kept in history/)",
    )
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const ek = await manager(opts.home).resetTpm(vm, { onProgress: progress(io, opts.json) });
      io.stdout(
        opts.json
          ? JSON.stringify({ vm, reset: "tpm", ek_fingerprint: ek })
          : `TPM of "${vm}" reset; new EK ${ek}`,
      );
    });
}
