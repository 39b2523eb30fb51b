/** `glint script VM [--stdout]`: the post-install script shared/set_identifiers.sh. */
import type { Command } from "commander";
import { type CliEnv, type CommonOptions, common } from "../common.js";

export function addScriptCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("script"))
    .description("write the post-install script shared/set_identifiers.sh (or print it)")
    .argument("<vm>", "VM name")
    .option("--stdout", "print the script instead of writing it")
    .action(async (vm: string, opts: CommonOptions & { stdout?: boolean }) => {
      const m = manager(opts.home);
      if (opts.stdout) {
        io.stdout(await m.renderPostInstallScript(vm));
        return;
      }
      const file = await m.createPostInstallScript(vm);
      io.stdout(opts.json ? JSON.stringify({ vm, script: file }) : `wrote ${file}`);
    });
}
