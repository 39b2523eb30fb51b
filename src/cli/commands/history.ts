/** `glint history VM`: a VM's past identities, oldest first. */
import type { Command } from "commander";
import { identifiersToDict } from "../../identity/model.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatTable } from "../format.js";

export function addHistoryCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("history"))
    .description("list a VM's past identities, oldest first")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const entries = await manager(opts.home).history(vm);
      if (opts.json) {
        io.stdout(
          JSON.stringify(
            entries.map((e) => ({
              archived_at: e.archivedAt,
              reason: e.reason,
              file: e.file,
              identifiers: "error" in e.identifiers ? null : identifiersToDict(e.identifiers),
              error: "error" in e.identifiers ? e.identifiers.error : null,
            })),
            null,
            2,
          ),
        );
        return;
      }
      if (entries.length === 0) {
        io.stdout(`VM "${vm}" has no past identities`);
        return;
      }
      io.stdout(
        formatTable([
          ["ARCHIVED", "REPLACED BY", "VM UUID", "MACHINE ID", "MAC"],
          ...entries.map((e) =>
            "error" in e.identifiers
              ? [e.archivedAt, e.reason, `(unreadable: ${e.identifiers.error})`]
              : [
                  e.archivedAt,
                  e.reason,
                  e.identifiers.vm_uuid,
                  e.identifiers.machine_id,
                  e.identifiers.mac_address,
                ],
          ),
        ]),
      );
    });
}
