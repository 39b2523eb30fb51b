/**
 * The interactive menu (`glint menu`, or plain `glint` in a terminal). Every
 * option asks its questions first and then calls one MenuApi (UuidManager)
 * method — the same API the commands use — so nothing is implemented twice
 * and a cancelled prompt never leaves anything half-done.
 *
 * Ctrl-C or Esc at any prompt goes back to the main menu; at the main menu it
 * leaves. A GlintError (a busy VM, a missing tool, …) is printed on one line
 * and the menu carries on.
 */
import { Separator } from "@inquirer/prompts";
import { POLICIES } from "../../identity/policies.js";
import { ACTIONS } from "./actions.js";
import type { MenuApi } from "./api.js";
import { type Ctx, guarded, isPromptCancel, type MenuAction, type MenuDeps } from "./context.js";
import { createFlow } from "./create.js";
import { type Paint, paint } from "./style.js";

export { isPromptCancel, type MenuAction, type MenuDeps } from "./context.js";
export { describeResult, formatCommand, nukePreview } from "./describe.js";

export const MAIN_MENU_MESSAGE = "What would you like to do?";

function mainChoices(c: Paint) {
  return [
    {
      value: "view",
      name: "View VM identifiers",
      description: "every identifier of one VM or of all VMs, with created/updated times",
    },
    { value: "regen-disk", name: POLICIES.disk.title, description: POLICIES.disk.description },
    { value: "regen-base", name: POLICIES.base.title, description: POLICIES.base.description },
    { value: "nuke", name: c.red(POLICIES.nuke.title), description: POLICIES.nuke.description },
    new Separator(),
    {
      value: "reset-uefi",
      name: "Reset UEFI variables",
      description:
        "a fresh UEFI variable store (boot entries, Secure Boot state); identifiers stay",
    },
    {
      value: "reset-tpm",
      name: "Reset TPM",
      description: "wipe the TPM state and create a new TPM with a new endorsement key",
    },
    {
      value: "qemu",
      name: "Show QEMU command",
      description: "the command line that boots the VM with its identity",
    },
    {
      value: "script",
      name: "Write post-install script",
      description: "shared/set_identifiers.sh applies the identity inside the guest",
    },
    new Separator(),
    { value: "create", name: "Create a new VM", description: "new VM with all-new identifiers" },
    { value: "exit", name: "Exit" },
  ] as const;
}

/** Run the menu until the user leaves. Only a failure to list the VMs is thrown. */
export async function runMenu(api: MenuApi, deps: MenuDeps): Promise<void> {
  const ctx: Ctx = { api, deps, c: paint(deps.color) };
  const { c } = ctx;
  deps.print(c.bold(`Glint: VM identities in ${api.home}`));
  deps.print(c.dim("↑/↓ move · Enter choose · Esc back · Ctrl-C leave"));
  for (;;) {
    const vms = await api.listVms();
    if (vms.length === 0) {
      let create: boolean;
      try {
        create = await deps.confirm({
          message: `There are no VMs in ${api.home} yet. Create one now?`,
          default: true,
        });
      } catch (error) {
        if (isPromptCancel(error)) return;
        throw error;
      }
      if (!create) return;
      await guarded(ctx, () => createFlow(ctx, vms));
      continue;
    }
    let action: MenuAction;
    try {
      action = await deps.select<MenuAction>({
        message: MAIN_MENU_MESSAGE,
        choices: mainChoices(c),
        pageSize: 15,
        loop: true,
      });
    } catch (error) {
      if (isPromptCancel(error)) return;
      throw error;
    }
    if (action === "exit") return;
    await guarded(ctx, () => ACTIONS[action](ctx, vms));
  }
}
