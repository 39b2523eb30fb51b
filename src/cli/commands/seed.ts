/** `glint seed VM`: rebuild seed.iso, the cloud-init NoCloud seed. */
import type { Command } from "commander";
import { type CliEnv, type CommonOptions, common } from "../common.js";

export function addSeedCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("seed"))
    .description("rebuild seed.iso, the cloud-init NoCloud seed (label cidata)")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const file = await manager(opts.home).writeSeedIso(vm);
      io.stdout(opts.json ? JSON.stringify({ vm, seed: file }) : `wrote ${file}`);
    });
}
