/** `glint script VM… [--stdout]`: the post-install script shared/set_identifiers.sh. */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import { type BulkOptions, bulkOperands, forEachVm, selectVms } from "../bulk.js";
import { type CliEnv, common } from "../common.js";

export function addScriptCommand(program: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(program.command("script")), true)
    .description("write the post-install script shared/set_identifiers.sh (or print it)")
    .option("--stdout", "print the script instead of writing it (one VM; not with --json)")
    .action(async (names: string[], opts: BulkOptions & { stdout?: boolean }) => {
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts);
      if (opts.stdout) {
        // The script is a shell script: there is no JSON form of it.
        if (opts.json) throw new UsageError("--stdout prints the script itself; drop --json");
        if (bulk) throw new UsageError("--stdout prints one VM's script; name one VM");
        io.stdout(await m.renderPostInstallScript(vms[0] ?? ""));
        return;
      }
      if (!bulk) {
        const vm = vms[0] ?? "";
        const file = await m.createPostInstallScript(vm);
        io.stdout(opts.json ? JSON.stringify({ vm, script: file }) : `wrote ${file}`);
        return;
      }
      await forEachVm(
        io,
        vms,
        opts,
        async (vm) => ({ script: await m.createPostInstallScript(vm) }),
        (vm, r) => `${vm}: wrote ${r.script}`,
      );
    });
}
