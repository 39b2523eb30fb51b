/** `glint doctor`: every identifier value that two VMs share. */
import type { Command } from "commander";
import { GlintError } from "../../errors.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatTable } from "../format.js";

export function addDoctorCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("doctor"))
    .description("check the home: list every identifier value that two VMs share")
    .action(async (opts: CommonOptions) => {
      const dups = await manager(opts.home).duplicates();
      if (opts.json) {
        io.stdout(JSON.stringify({ duplicates: dups }, null, 2));
      } else if (dups.length === 0) {
        io.stdout("no duplicate identifiers");
      } else {
        io.stdout(
          formatTable([
            ["FIELD", "VALUE", "VMS"],
            ...dups.map((d) => [d.field, d.value, d.vms.join(", ")]),
          ]),
        );
      }
      if (dups.length > 0) {
        throw new GlintError(`${dups.length} identifier value(s) are shared by more than one VM`, {
          code: "conflict",
          details: { reason: "duplicates-found" },
        });
      }
    });
}
