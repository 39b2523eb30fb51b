/** `glint list`: one line per VM; an unreadable VM gets a line saying why. */
import type { Command } from "commander";
import { identifiersToDict } from "../../identity/model.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatTable } from "../format.js";
import { vmState } from "../state.js";

export function addListCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("list"))
    .description("list VMs, one line each")
    .action(async (opts: CommonOptions) => {
      const m = manager(opts.home);
      const rows: string[][] = [];
      const json: Record<string, unknown>[] = [];
      for (const vm of await m.listVms()) {
        const { state } = await vmState(m, vm).catch(() => ({ state: "?" }));
        try {
          const ids = await m.getIdentifiers(vm);
          const cfg = await m.getConfig(vm);
          rows.push([
            vm,
            state,
            ids.vm_uuid,
            ids.mac_address,
            cfg.firmware,
            cfg.tpm ? "tpm" : "-",
            cfg.overlay ? "overlay" : "-",
            ids.updated_at,
          ]);
          json.push({
            name: vm,
            ok: true,
            state,
            ...identifiersToDict(ids),
            firmware: cfg.firmware,
            tpm: cfg.tpm,
            overlay: cfg.overlay,
          });
        } catch (error) {
          const msg = error instanceof Error ? error.message : String(error);
          rows.push([vm, state, "-", "-", "-", "-", "-", `unusable: ${msg}`]);
          json.push({ name: vm, ok: false, state, error: msg });
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
