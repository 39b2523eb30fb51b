/**
 * `glint completion bash|zsh|fish` and `glint man`, generated from the
 * commander definitions: the bash completion is run in a real bash.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { runCli, runCliOk } from "../support/cli.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

const exec = promisify(execFile);
let dir: string;
let script: string;
beforeAll(async () => {
  dir = await tempDir("glint-completion-");
  await runCliOk(["create", "alpha", "--home", path.join(dir, "home")]);
  await runCliOk(["create", "beta", "--home", path.join(dir, "home")]);
  // A `glint` on PATH, for the VM-name completion.
  await fs.mkdir(path.join(dir, "bin"));
  await fs.writeFile(
    path.join(dir, "bin", "glint"),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
    { mode: 0o755 },
  );
  script = path.join(dir, "glint.bash");
  await fs.writeFile(script, await runCliOk(["completion", "bash"]));
});

/** What bash completes for the words typed so far. */
async function complete(...words: string[]): Promise<string[]> {
  const { stdout } = await exec(
    "bash",
    [
      "-c",
      `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _glint; printf '%s\\n' "\${COMPREPLY[@]}"`,
      "bash",
      script,
      "glint",
      ...words,
    ],
    {
      env: {
        ...process.env,
        PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
        GLINT_HOME: path.join(dir, "home"),
      },
    },
  );
  return stdout.split("\n").filter(Boolean).sort();
}

describe("glint completion bash", () => {
  it("completes commands, subcommands, options and VM names", async () => {
    expect(await complete("sh")).toEqual(["show"]);
    expect(await complete("st")).toEqual(["start", "status", "stop"]);
    expect(await complete("regen", "")).toEqual(["base", "disk"]);
    expect(await complete("rm", "--k")).toEqual(["--keep-history"]);
    expect(await complete("create", "--no-s")).toEqual(["--no-sysprep"]);
    expect(await complete("show", "")).toEqual(["alpha", "beta"]);
    expect(await complete("regen", "disk", "b")).toEqual(["beta"]);
  });
});

describe("zsh, fish and the man page", () => {
  it("come from the same definitions", async () => {
    const zsh = await runCliOk(["completion", "zsh"]);
    expect(zsh).toMatch(/^#compdef glint$/m);
    expect(zsh).toContain("complete -F _glint glint");
    const fish = await runCliOk(["completion", "fish"]);
    expect(fish).toContain("complete -c glint -n __fish_use_subcommand -a stop -d");
    expect(fish).toMatch(/-n '__fish_seen_subcommand_from rm' -l keep-history/);
    const man = await runCliOk(["man"]);
    expect(man).toMatch(/^\.TH GLINT 1/m);
    for (const cmd of [
      "create",
      "show",
      "regen disk",
      "start",
      "stop",
      "status",
      "rm",
      "completion",
    ])
      expect(man).toContain(`.B glint ${cmd.replace(/-/g, "\\-")} `);
    const bad = await runCli(["completion", "tcsh"]);
    expect(bad.code).toBe(2);
  });
});
