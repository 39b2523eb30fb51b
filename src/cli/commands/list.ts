/** `glint list`: one line per VM; an unreadable VM gets a line saying why. */
import type { Command } from "commander";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatTable } from "../format.js";

export function addListCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("list"))
    .description("list VMs, one line each")
    .action(async (opts: CommonOptions) => {
      const m = manager(opts.home);
      const rows: string[][] = [];
      const json: Record<string, unknown>[] = [];
      for (const { vm, state, summary, error } of await m.listing()) {
        if (summary) {
          const s = summary;
          rows.push([
            vm,
            state,
            String(s.vm_uuid),
            String(s.mac_address),
            String(s.firmware),
            s.tpm ? "tpm" : "-",
            s.overlay ? "overlay" : "-",
            String(s.updated_at),
          ]);
          json.push({ name: vm, ok: true, state, ...s });
        } else {
          rows.push([vm, state, "-", "-", "-", "-", "-", `unusable: ${error}`]);
          json.push({ name: vm, ok: false, state, error });
        }
      }
      if (opts.json) io.stdout(JSON.stringify(json, null, 2));
      else if (rows.length === 0)
        io.stdout(`no VMs in ${m.home}; create one with \`glint create <vm>\``);
      else
        io.stdout(
          formatTable([
            ["NAME", "STATE", "VM UUID", "MAC", "FIRMWARE", "TPM", "OVERLAY", "UPDATED"],
            ...rows,
          ]),
        );
    });
}
