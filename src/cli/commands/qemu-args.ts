/** `glint qemu-args VM [-- ARGS…]`: the QEMU arguments for a VM. */
import type { Command } from "commander";
import { afterDoubleDash, type CliEnv, type CommonOptions, common } from "../common.js";
import { shellQuote } from "../shell.js";

export function addQemuArgsCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("qemu-args"))
    .description("print the QEMU arguments for a VM: identity, firmware, TPM and disks")
    .argument("<vm>", "VM name")
    .argument("[base-args...]", "QEMU arguments to merge with (after --)")
    .option(
      "--draw-macs",
      "draw and keep (in identifiers.json) the MACs of NICs that have none yet; without it nothing is changed",
    )
    .action(
      async (
        vm: string,
        operands: string[],
        opts: CommonOptions & { drawMacs?: boolean },
        cmd: Command,
      ) => {
        const base = afterDoubleDash(cmd, operands, "QEMU arguments");
        const argv = await manager(opts.home).qemuArgs(vm, base, {
          drawMacs: Boolean(opts.drawMacs),
        });
        io.stdout(opts.json ? JSON.stringify(argv) : shellQuote(argv));
      },
    );
}
