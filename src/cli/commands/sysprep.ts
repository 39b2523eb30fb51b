/**
 * `glint sysprep IMAGE --vm VM [--dry-run] [--json]`: apply a VM's identity
 * to a disk image offline (src/sysprep). Holds the VM's lock and refuses
 * while its QEMU runs. An image with nothing Glint recognises exits 1 and
 * names what it found.
 */
import type { Command } from "commander";
import { hostnameFor } from "../../guest/index.js";
import { formatReport, type SysprepReport, sysprepImage } from "../../sysprep/index.js";
import { acquireLock } from "../../vm/lock.js";
import { assertNotRunning } from "../../vm/running.js";
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
      const identifiers = await m.getIdentifiers(opts.vm);
      const config = await m.getConfig(opts.vm);
      // The same hostname the guest script and cloud-init give (VM name or glint-<machine-id>).
      const hostname = hostnameFor(opts.vm, identifiers, config.hostname_from);
      const paths = m.paths(opts.vm);
      const apply = () =>
        sysprepImage(
          image,
          { vmName: opts.vm, identifiers, hostname },
          {
            dryRun: Boolean(opts.dryRun),
            onProgress: (message) => {
              if (!opts.json) io.stderr(`… ${message}`);
            },
          },
        );
      let report: SysprepReport;
      if (opts.dryRun) report = await apply();
      else {
        const lock = await acquireLock(paths.lock, { purpose: "sysprep", vm: opts.vm });
        try {
          await assertNotRunning(paths);
          report = await apply();
        } finally {
          await lock.release();
        }
      }
      io.stdout(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
      if (report.status === "skipped") {
        io.stderr(`glint: ${image}: ${report.skipped[0]?.reason ?? "nothing to re-identify"}`);
        setExitCode(1);
      }
    });
}
