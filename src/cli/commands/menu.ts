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
    // An unknown command's own operands and options: reported as an unknown command.
    .allowExcessArguments()
    .allowUnknownOption()
    // `glint help [command]` (commander adds it only on request, since the
    // program has an action of its own).
    .helpCommand(true)
    .action(async (command: string | undefined, opts: CommonOptions) => {
      if (command !== undefined) {
        const names = program.commands.map((c) => c.name());
        const near = closest(command, names);
        throw new UsageError(
          `unknown command '${command}'${near ? ` (did you mean '${near}'?)` : ""}; run \`glint --help\` for the list of commands`,
        );
      }
      if (io.isTTY) await menu(opts.home);
      else program.help({ error: true });
    });
}

/** Edit distance with transpositions (optimal string alignment). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = v;
    }
  }
  return at(a.length, b.length);
}

/** The command name nearest to a mistyped one, if it is near enough. */
export function closest(word: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const name of names) {
    const dd = distance(word, name);
    if (dd < bestDistance) {
      best = name;
      bestDistance = dd;
    }
  }
  return best;
}
