/** `glint menu`, and plain `glint` in a terminal: the interactive menu. */
import { type Command, CommanderError } from "commander";
import { UsageError } from "../../errors.js";
import { type CliEnv, type CommonOptions, HOME_HELP } from "../common.js";

export function addMenuCommand(program: Command, { io, manager }: CliEnv): void {
  const menu = async (home: string | undefined): Promise<void> => {
    // Loaded on demand: the prompt library is only needed by the menu.
    const { startMenu } = await import("../menu/index.js");
    const code = await startMenu(manager(home), { isTTY: io.isTTY, env: process.env });
    // startMenu printed its own message; exit with its code (2 without a TTY).
    if (code !== 0) throw new CommanderError(code, "glint.menu", "");
  };
  program
    .command("menu")
    .description("interactive menu (also plain `glint` in a terminal)")
    .option("--home <dir>", HOME_HELP)
    .option("--json", "not supported by the menu; use the other commands")
    .action((opts: CommonOptions) => menu(opts.home));
  program
    .option("--home <dir>", HOME_HELP)
    .argument("[command]")
    .action(async (command: string | undefined, opts: CommonOptions) => {
      if (command !== undefined) {
        throw new UsageError(`unknown command '${command}' (run \`glint --help\` for usage)`);
      }
      if (io.isTTY) await menu(opts.home);
      else program.help({ error: true });
    });
}
