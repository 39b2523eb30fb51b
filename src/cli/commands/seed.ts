/** `glint seed VM…`: rebuild seed.iso, the cloud-init NoCloud seed. */
import type { Command } from "commander";
import { type BulkOptions, bulkOperands, forEachVm, selectVms } from "../bulk.js";
import { type CliEnv, common } from "../common.js";

export function addSeedCommand(program: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(program.command("seed")), true)
    .description(
      "rebuild seed.iso, the cloud-init NoCloud seed (label cidata), or config-drive.iso for --cloud openstack",
    )
    .action(async (names: string[], opts: BulkOptions) => {
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts);
      if (!bulk) {
        const vm = vms[0] ?? "";
        const file = await m.writeSeedIso(vm);
        io.stdout(opts.json ? JSON.stringify({ vm, seed: file }) : `wrote ${file}`);
        return;
      }
      await forEachVm(
        io,
        vms,
        opts,
        async (vm) => ({ seed: await m.writeSeedIso(vm) }),
        (vm, r) => `${vm}: wrote ${r.seed}`,
      );
    });
}
