/** `glint reset uefi|tpm VM… | --all | --match GLOB`: reset VMs' firmware state. */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import { type BulkOptions, bulkOperands, confirmSet, forEachVm, selectVms } from "../bulk.js";
import { type CliEnv, common, progress } from "../common.js";

export function addResetCommand(program: Command, { io, manager }: CliEnv): void {
  const reset = program
    .command("reset")
    .description("reset a VM's firmware state")
    .usage("uefi|tpm <vm...> [options]")
    .argument("[target]")
    .allowExcessArguments()
    .action((target: string | undefined) => {
      throw new UsageError(
        `${target === undefined ? "reset needs a target" : `unknown target '${target}'`}: use \`glint reset uefi <vm>\` or \`glint reset tpm <vm>\``,
      );
    });
  const target = (
    name: "uefi" | "tpm",
    description: string,
    question: (set: string) => string,
    apply: (vm: string, opts: BulkOptions, single: boolean) => Promise<Record<string, unknown>>,
    line: (vm: string, r: Record<string, unknown>) => string,
  ) =>
    bulkOperands(
      // The parent accepts any operands (to name a bad target); this one takes VM names.
      common(reset.command(name)).description(description).allowExcessArguments(false),
    )
      .option("--yes", "do not ask for confirmation")
      .action(async (names: string[], opts: BulkOptions) => {
        const m = manager(opts.home);
        const { vms, bulk } = await selectVms(m, names, opts);
        if (!bulk) await m.assertExists(vms[0] ?? "");
        await confirmSet(io, question, vms, opts, `reset ${name}`);
        if (!bulk) {
          const vm = vms[0] ?? "";
          const r = await apply(vm, opts, true);
          io.stdout(opts.json ? JSON.stringify({ vm, ...r }) : line(vm, r));
          return;
        }
        await forEachVm(io, vms, opts, (vm) => apply(vm, opts, false), line);
      });
  target(
    "uefi",
    "replace the VM's UEFI variables with a fresh copy (old ones kept in history/)",
    (set) => `Reset the UEFI variables of ${set}? (Boot entries and Secure Boot state are lost.)`,
    async (vm, opts) => {
      await manager(opts.home).resetUefiVariables(vm);
      return { reset: "uefi" };
    },
    (vm) => `UEFI variables of "${vm}" reset`,
  );
  target(
    "tpm",
    "wipe the VM's TPM and manufacture a new one with a new EK (old state kept in history/)",
    (set) => `Wipe the TPM of ${set} and make a new one with a new EK? (Sealed secrets are lost.)`,
    async (vm, opts, single) => {
      const ek = await manager(opts.home).resetTpm(
        vm,
        single ? { onProgress: progress(io, opts.json) } : {},
      );
      return { reset: "tpm", ek_fingerprint: ek };
    },
    (vm, r) => `TPM of "${vm}" reset; new EK ${String(r.ek_fingerprint)}`,
  );
}
