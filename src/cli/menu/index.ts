/**
 * `glint menu`: the interactive menu on the real terminal. Without a terminal
 * it refuses (exit code 2) and points to the non-interactive commands.
 */
import readline from "node:readline";
import { confirm, input, select } from "@inquirer/prompts";
import type { MenuApi } from "./api.js";
import { withEscape } from "./escape.js";
import { runMenu } from "./menu.js";
import { spinnerFactory } from "./spinner.js";
import { colorAllowed } from "./style.js";

export type { CreateVmOptions, MenuApi } from "./api.js";
export { type Prompts, withEscape } from "./escape.js";
export { describeResult, isPromptCancel, type MenuDeps, nukePreview, runMenu } from "./menu.js";
export { createSpinner, type Spinner, spinnerFactory } from "./spinner.js";

export const NOT_A_TTY_MESSAGE = [
  "glint: the menu needs an interactive terminal; use the commands instead:",
  "  glint list                 list VMs",
  "  glint show [vm]            view identifiers (of all VMs without a name)",
  "  glint create <vm>          create a VM with all-new identifiers",
  "  glint regen disk <vm>      regenerate overlay with fresh identifiers",
  "  glint regen base <vm>      regenerate base image identifiers",
  "  glint nuke <vm> --yes      NUKE: every identifier anew, fresh UEFI, TPM and overlay",
  "  glint history <vm>         past identities",
  "(glint --help lists every command and option)",
].join("\n");

export interface StartMenuOptions {
  /** Whether stdin and stdout are both terminals. */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** Where the refusal goes without a TTY (default: stderr). */
  stderr?: (text: string) => void;
}

/** Run the menu; returns the exit code (2 without a terminal, else 0). */
export async function startMenu(api: MenuApi, options: StartMenuOptions): Promise<number> {
  if (!options.isTTY) {
    const write = options.stderr ?? ((t: string) => process.stderr.write(`${t}\n`));
    write(NOT_A_TTY_MESSAGE);
    return 2;
  }
  const stdin = process.stdin;
  readline.emitKeypressEvents(stdin);
  const prompts = withEscape({ select, input, confirm }, stdin);
  try {
    await runMenu(api, {
      ...prompts,
      print: (text) => process.stdout.write(`${text}\n`),
      color: colorAllowed(Boolean(process.stdout.isTTY), options.env),
      spinner: spinnerFactory({
        stream: process.stderr,
        animate: colorAllowed(Boolean(process.stderr.isTTY), options.env),
      }),
    });
  } finally {
    prompts.dispose();
    // The keypress listener put stdin in flowing mode; let the process exit.
    stdin.pause();
  }
  return 0;
}
