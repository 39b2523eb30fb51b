/**
 * `glint sysprep IMAGE --vm VM [--dry-run] [--json]`: apply a VM's identity
 * to a disk image offline (src/sysprep), through the manager (VM lock,
 * running check, recovery). An image with nothing Glint recognises exits 1
 * and names what it found.
 */
import type { Command } from "commander";
import { formatReport } from "../../sysprep/index.js";
import { type CliEnv, HOME_HELP } from "../common.js";

interface SysprepCliOptions {
  vm: string;
  dryRun?: boolean;
  home?: string;
  json?: boolean;
}

export function addSysprepCommand(program: Command, { io, manager, setExitCode }: CliEnv): void {
  program
    .command("sysprep")
    .description(
      "apply a VM's identity to a disk image offline: GPT/PARTUUIDs, filesystem UUIDs, machine-id, hostname, SSH host keys, network and cloud-init state",
    )
    .argument("<image>", "qcow2 or raw disk image, changed in place (all or nothing)")
    .requiredOption("--vm <vm>", "VM whose identity to apply")
    .option("--dry-run", "list every planned change and write nothing")
    .option("--home <dir>", HOME_HELP)
    .option("--json", "print the report as JSON")
    .action(async (image: string, opts: SysprepCliOptions) => {
      const m = manager(opts.home);
      const report = await m.sysprep(opts.vm, image, {
        dryRun: Boolean(opts.dryRun),
        onProgress: (message: string) => {
          if (!opts.json) io.stderr(`… ${message}`);
        },
      });
      io.stdout(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
      if (report.status === "skipped") {
        io.stderr(`glint: ${image}: ${report.skipped[0]?.reason ?? "nothing to re-identify"}`);
        setExitCode(1);
      }
    });
}
