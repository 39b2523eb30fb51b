/** `glint show [VM]`: the identifiers of one VM, or of all VMs. */
import type { Command } from "commander";
import { GlintError } from "../../errors.js";
import { identifiersToDict } from "../../identity/model.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatIdentity } from "../format.js";

export function addShowCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("show"))
    .description("show the identifiers of one VM, or of all VMs")
    .argument("[vm]", "VM name (default: all VMs)")
    .action(async (vm: string | undefined, opts: CommonOptions) => {
      const m = manager(opts.home);
      if (vm !== undefined) {
        const ids = await m.getIdentifiers(vm);
        io.stdout(
          opts.json
            ? JSON.stringify(identifiersToDict(ids), null, 2)
            : `${vm}\n${formatIdentity(ids, "  ")}`,
        );
        return;
      }
      const all = [];
      const unreadable: string[] = [];
      for (const name of await m.listVms()) {
        try {
          all.push({ name, ids: await m.getIdentifiers(name) });
        } catch (error) {
          unreadable.push(`${name} (${error instanceof Error ? error.message : String(error)})`);
        }
      }
      // Show every readable VM, then fail naming the others.
      const failAfterwards = () => {
        if (unreadable.length > 0) {
          throw new GlintError(`cannot read ${unreadable.length} VM(s): ${unreadable.join("; ")}`);
        }
      };
      if (opts.json)
        io.stdout(
          JSON.stringify(
            all.map((x) => identifiersToDict(x.ids)),
            null,
            2,
          ),
        );
      else if (all.length === 0 && unreadable.length === 0)
        io.stdout(`no VMs in ${m.home}; create one with \`glint create <vm>\``);
      else io.stdout(all.map((x) => `${x.name}\n${formatIdentity(x.ids, "  ")}`).join("\n\n"));
      failAfterwards();
    });
}
