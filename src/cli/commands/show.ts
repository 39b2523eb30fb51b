/**
 * `glint show [VM…] [--all | --match GLOB]`: VMs' identifiers. One VM named:
 * its identity (JSON: the identifiers object). Otherwise (several, `--all`,
 * `--match`, or nothing named = all VMs): one block per VM, and with
 * `--json` an array of `{vm, ok, result | error}`; a VM that cannot be read
 * gets its error in its element (or a FAILED line), the others are still
 * shown, and the command exits 1 at the end.
 */
import type { Command } from "commander";
import { identifiersToDict, type SystemIdentifiers } from "../../identity/model.js";
import { type BulkOptions, bulkOperands, forEachVm, selectVms } from "../bulk.js";
import { type CliEnv, common } from "../common.js";
import { formatIdentity } from "../format.js";
import { vmBlock } from "../state.js";

export function addShowCommand(program: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(program.command("show")))
    .description("show the identifiers of one VM, several, or all VMs (the default)")
    .action(async (names: string[], opts: BulkOptions) => {
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts, true);
      if (!bulk) {
        const vm = vms[0] ?? "";
        const ids = await m.getIdentifiers(vm);
        io.stdout(
          opts.json
            ? JSON.stringify(identifiersToDict(ids), null, 2)
            : `${vm}\n${formatIdentity(ids, "  ")}\n${await vmBlock(m, vm, await m.getConfig(vm), "    ")}`,
        );
        return;
      }
      if (vms.length === 0) {
        io.stdout(opts.json ? "[]" : `no VMs in ${m.home}; create one with \`glint create <vm>\``);
        return;
      }
      let first = true;
      await forEachVm<SystemIdentifiers>(
        io,
        vms,
        opts,
        (vm) => m.getIdentifiers(vm),
        (vm, ids) => {
          const block = `${first ? "" : "\n"}${vm}\n${formatIdentity(ids, "  ")}`;
          first = false;
          return block;
        },
        identifiersToDict,
      );
    });
}
