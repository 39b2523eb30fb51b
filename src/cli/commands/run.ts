/** `glint run VM [-- QEMU-ARGS…]`: QEMU in the foreground with the VM's identity. */
import type { Command } from "commander";
import { afterDoubleDash, type CliEnv, type CommonOptions, common } from "../common.js";
import { shellQuote } from "../shell.js";

export function addRunCommand(program: Command, { io, manager, setExitCode }: CliEnv): void {
  common(program.command("run"))
    .description(
      "run the VM with qemu-system-x86_64 in the foreground, with its identity, firmware, TPM and disks",
    )
    .argument("<vm>", "VM name")
    .argument("[qemu-args...]", "extra QEMU arguments (after --), e.g. -kernel … -nographic")
    .option("--dry-run", "print the command instead of running it")
    .action(
      async (
        vm: string,
        operands: string[],
        opts: CommonOptions & { dryRun?: boolean },
        cmd: Command,
      ) => {
        const extra = afterDoubleDash(cmd, operands, "QEMU arguments");
        const m = manager(opts.home);
        const { argv, exitCode, sidecar, sidecarCwd } = await m.run(vm, {
          extra,
          dryRun: Boolean(opts.dryRun),
        });
        if (opts.dryRun) {
          const cwd = sidecarCwd === undefined ? {} : { swtpm_cwd: sidecarCwd };
          // Relative swtpm paths: run it in a subshell that changes to the VM directory.
          const swtpmLine =
            sidecar &&
            (sidecarCwd === undefined
              ? shellQuote(sidecar)
              : `(cd ${shellQuote([sidecarCwd])} && exec ${shellQuote(sidecar)})`);
          if (opts.json)
            io.stdout(JSON.stringify(sidecar ? { swtpm: sidecar, ...cwd, qemu: argv } : argv));
          else io.stdout(swtpmLine ? `${swtpmLine} &\n${shellQuote(argv)}` : shellQuote(argv));
        }
        setExitCode(exitCode);
      },
    );
}
