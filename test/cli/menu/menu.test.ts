/** The interactive menu, driven by scripted prompts against an in-memory MenuApi. */
import { execFile } from "node:child_process";
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { select } from "@inquirer/prompts";
import { render } from "@inquirer/testing";
import { describe, expect, it, vi } from "vitest";
import { withEscape } from "../../../src/cli/menu/escape.js";
import { NOT_A_TTY_MESSAGE, startMenu } from "../../../src/cli/menu/index.js";
import { formatCommand, runMenu } from "../../../src/cli/menu/menu.js";
import { createSpinner } from "../../../src/cli/menu/spinner.js";
import { colorAllowed } from "../../../src/cli/menu/style.js";
import { BusyError, GlintError } from "../../../src/errors.js";
import { IDENTIFIER_FIELDS } from "../../../src/identity/model.js";
import {
  ctrlC,
  esc,
  FakeApi,
  fakeDeps,
  no,
  promptError,
  type Step,
  sel,
  typed,
  yes,
} from "../../support/menu-fakes.js";
import { tempDir } from "../../support/tmp.js";

const BACK = "*back*";
const ALL = "*all*";

/** Run the menu with a script; fails the test if the script was not followed exactly. */
async function run(api: FakeApi, steps: Step[], options: { color?: boolean } = {}) {
  const fake = fakeDeps(steps, options);
  await runMenu(api, fake.deps);
  expect(fake.prompts.problems).toEqual([]);
  expect(fake.prompts.remaining()).toBe(0);
  return fake;
}

function line(output: string, prefix: string): string {
  const found = output.split("\n").find((l) => l.startsWith(prefix));
  if (found === undefined) throw new Error(`no line starting with "${prefix}" in:\n${output}`);
  return found;
}

describe("main menu", () => {
  it("offers the seed's options in order, then Exit", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [sel("exit")]);
    expect(fake.prompts.log[0]?.offered).toEqual([
      "view",
      "regen-disk",
      "regen-base",
      "nuke",
      "reset-uefi",
      "reset-tpm",
      "qemu",
      "script",
      "create",
      "exit",
    ]);
    expect(api.mutations()).toEqual([]);
  });

  it("Ctrl-C at the main menu leaves cleanly without calling anything", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [ctrlC("select")]);
    expect(api.calls.map((c) => c.method)).toEqual(["listVms"]);
    expect(fake.output()).not.toMatch(/Error|at .*\.ts/);
  });

  it("Esc at the main menu leaves too", async () => {
    const api = new FakeApi();
    api.add("vm1");
    await run(api, [esc("select")]);
    expect(api.mutations()).toEqual([]);
  });

  it("does not colour its output when colour is off, and does when on", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const plain = await run(api, [sel("view"), sel("vm1"), sel("exit")]);
    expect(plain.output()).not.toContain("\x1b[");
    const coloured = await run(api, [sel("view"), sel("vm1"), sel("exit")], { color: true });
    expect(coloured.output()).toContain("\x1b[");
  });
});

describe("1. View VM identifiers", () => {
  it("shows every identifier type of one VM with its timestamps", async () => {
    const api = new FakeApi();
    const ids = api.add("vm1", { firmware: "uefi", tpm: true });
    api.add("vm2");
    const fake = await run(api, [sel("view"), sel("vm1"), sel("exit")]);
    expect(fake.prompts.log[1]?.offered).toEqual(["vm1", "vm2", ALL, BACK]);
    const out = fake.output();
    for (const f of IDENTIFIER_FIELDS) expect(out).toContain(ids[f]);
    expect(line(out, "  Created")).toContain(ids.created_at);
    expect(line(out, "  Updated")).toContain(ids.updated_at);
    expect(out).toContain("TPM: yes");
    expect(api.mutations()).toEqual([]);
    expect(api.calls.filter((c) => c.method === "getIdentifiers").map((c) => c.vm)).toEqual([
      "vm1",
    ]);
  });

  it("shows all VMs, and a broken one does not hide the others", async () => {
    const api = new FakeApi();
    const a = api.add("a");
    const b = api.add("b");
    api.add("c");
    api.broken.set("c", new GlintError("c/identifiers.json: not valid JSON"));
    const fake = await run(api, [sel("view"), sel(ALL), sel("exit")]);
    expect(fake.output()).toContain(a.vm_uuid);
    expect(fake.output()).toContain(b.vm_uuid);
    expect(fake.output()).toContain("unusable: c/identifiers.json: not valid JSON");
  });

  it("Back returns to the menu quietly", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [sel("view"), sel(BACK), sel("exit")]);
    expect(fake.output()).not.toContain("Cancelled");
    expect(api.calls.some((c) => c.method === "getIdentifiers")).toBe(false);
  });
});

describe("2. Regenerate overlay with fresh identifiers", () => {
  it("offers only VMs with an overlay, confirms, and says what was kept and what changed", async () => {
    const api = new FakeApi();
    api.add("plain");
    const before = api.add("with-overlay", {
      overlay: true,
      base: { source: "/b", linked: false },
    });
    api.add("zz-overlay", { overlay: true });
    const fake = await run(api, [sel("regen-disk"), sel("with-overlay"), yes, sel("exit")]);
    expect(fake.prompts.log[1]?.offered).toEqual(["with-overlay", "zz-overlay", BACK]);
    expect(fake.prompts.log[2]).toMatchObject({ kind: "confirm", default: false });
    expect(api.mutations()).toEqual([
      {
        method: "regenerateDiskIdentifiers",
        vm: "with-overlay",
        options: { onProgress: expect.any(Function) },
      },
    ]);
    const after = api.vms.get("with-overlay")?.ids;
    const out = fake.output();
    const kept = line(out, "Kept:");
    const changed = line(out, "Changed:");
    for (const l of ["VM UUID", "Machine ID", "MAC address"]) {
      expect(kept).toContain(l);
      expect(changed).not.toContain(l);
    }
    for (const l of ["Disk UUID", "Partition UUID", "Filesystem UUID", "VM generation ID"]) {
      expect(changed).toContain(l);
      expect(kept).not.toContain(l);
    }
    // Old beside new.
    expect(out).toContain(before.disk_uuid);
    expect(out).toContain(after?.disk_uuid);
    expect(line(out, "VM UUID")).toContain("(kept)");
    expect(out).toContain("history/");
    // The spinner ran, showed progress and was stopped.
    expect(fake.spinners).toHaveLength(1);
    expect(fake.spinners[0]?.updates.length).toBeGreaterThan(0);
    expect(fake.spinners[0]?.stopped).toBe(true);
  });

  it("says so when no VM has an overlay, and calls nothing", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [sel("regen-disk"), sel("exit")]);
    expect(fake.output()).toMatch(/No VM uses an overlay/);
    expect(api.mutations()).toEqual([]);
  });

  it("answering no changes nothing", async () => {
    const api = new FakeApi();
    api.add("vm1", { overlay: true });
    const fake = await run(api, [sel("regen-disk"), sel("vm1"), no, sel("exit")]);
    expect(api.mutations()).toEqual([]);
    expect(fake.output()).toContain("Nothing was changed");
  });

  it("Esc at the confirmation goes back to the menu without calling the API", async () => {
    const api = new FakeApi();
    api.add("vm1", { overlay: true });
    const fake = await run(api, [sel("regen-disk"), sel("vm1"), esc("confirm"), sel("exit")]);
    expect(api.mutations()).toEqual([]);
    expect(fake.output()).toContain("Cancelled; nothing was changed.");
    expect(fake.prompts.log.at(-1)?.kind).toBe("select");
  });
});

describe("3. Regenerate base image identifiers", () => {
  it("explains when to use it before asking, then regenerates the chosen VM", async () => {
    const api = new FakeApi();
    const before = api.add("vm1");
    api.add("vm2");
    const fake = await run(api, [sel("regen-base"), sel("vm2"), yes, sel("exit")]);
    const explanation = fake.printed.find((p) => p.includes("Use this when"));
    expect(explanation).toMatch(/cloned/);
    expect(explanation).toMatch(/new base image/);
    expect(explanation).toMatch(/post-install script/);
    expect(explanation).toMatch(/UEFI/);
    expect(api.mutations()).toEqual([
      {
        method: "regenerateBaseIdentifiers",
        vm: "vm2",
        options: { onProgress: expect.any(Function) },
      },
    ]);
    expect(api.vms.get("vm1")?.ids).toEqual(before);
    expect(line(fake.output(), "Changed:")).toContain("VM UUID");
  });

  it("Ctrl-C at the VM list calls nothing", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [sel("regen-base"), ctrlC("select"), sel("exit")]);
    expect(api.mutations()).toEqual([]);
    expect(fake.output()).toContain("Cancelled; nothing was changed.");
  });
});

describe("4. NUKE VM session", () => {
  it("shows what will be destroyed, requires the typed name, then shows old beside new", async () => {
    const api = new FakeApi();
    const before = api.add("vm1", { firmware: "uefi-secure", tpm: true, overlay: true });
    const fake = await run(api, [sel("nuke"), sel("vm1"), typed("vm1"), sel("exit")]);
    const preview = fake.printed.find((p) => p.includes("NUKE")) ?? "";
    for (const f of IDENTIFIER_FIELDS) expect(preview).toContain(before[f]);
    expect(preview).toMatch(/UEFI variables: boot entries/);
    expect(preview).toMatch(/Secure Boot state/);
    expect(preview).toMatch(/the TPM: its state is wiped/);
    expect(preview).toMatch(/the overlay: /);
    expect(fake.prompts.log[2]?.message).toContain('"vm1"');
    expect(api.mutations()).toEqual([
      { method: "nukeAndRegenerateAll", vm: "vm1", options: { onProgress: expect.any(Function) } },
    ]);
    const after = api.vms.get("vm1")?.ids;
    const vmUuidRow = line(fake.output(), "VM UUID");
    expect(vmUuidRow).toContain(before.vm_uuid);
    expect(vmUuidRow).toContain(after?.vm_uuid);
    expect(vmUuidRow).not.toContain("(kept)");
    expect(line(fake.output(), "Kept:")).toContain("nothing");
  });

  it("says what a BIOS VM without TPM or overlay does not have", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [sel("nuke"), sel("vm1"), typed("nope"), sel("exit")]);
    const preview = fake.printed.find((p) => p.includes("NUKE")) ?? "";
    expect(preview).toContain("UEFI variables: none (BIOS firmware)");
    expect(preview).toContain("Secure Boot: not enabled");
    expect(preview).toContain("TPM: none");
    expect(preview).toContain("overlay: none");
  });

  it("a wrong name calls nothing", async () => {
    const api = new FakeApi();
    const before = api.add("vm1");
    const fake = await run(api, [sel("nuke"), sel("vm1"), typed("vm2"), sel("exit")]);
    expect(api.mutations()).toEqual([]);
    expect(api.vms.get("vm1")?.ids).toEqual(before);
    expect(fake.output()).toContain("did not match; nothing was changed");
  });

  it("Ctrl-C at the name prompt returns to the menu without calling the API", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [
      sel("nuke"),
      sel("vm1"),
      ctrlC("input"),
      sel("view"),
      sel("vm1"),
      sel("exit"),
    ]);
    expect(api.mutations()).toEqual([]);
    expect(fake.output()).toContain("Cancelled; nothing was changed.");
    expect(fake.output()).not.toMatch(/ExitPromptError|\n\s+at /);
  });

  it("a busy VM: the one-line message is shown and the menu carries on", async () => {
    const api = new FakeApi();
    api.add("vm1");
    api.fail.nukeAndRegenerateAll = new BusyError(
      'VM "vm1" is busy: process 4242 holds it for "glint regen disk"; wait for it to finish (or stop it) and try again',
    );
    const fake = await run(api, [
      sel("nuke"),
      sel("vm1"),
      typed("vm1"),
      sel("view"),
      sel("vm1"),
      sel("exit"),
    ]);
    expect(fake.output()).toContain('✖ VM "vm1" is busy: process 4242 holds it');
    expect(fake.output()).not.toMatch(/BusyError|\n\s+at /);
    expect(fake.spinners[0]?.stopped).toBe(true);
    // The menu came back and the next option ran.
    expect(api.calls.filter((c) => c.method === "getIdentifiers")).toHaveLength(2);
  });
});

describe("UEFI, TPM, QEMU command, post-install script", () => {
  it("Reset UEFI variables offers only UEFI VMs and calls resetUefiVariables", async () => {
    const api = new FakeApi();
    api.add("bios");
    api.add("efi", { firmware: "uefi" });
    api.add("sb", { firmware: "uefi-secure" });
    const fake = await run(api, [sel("reset-uefi"), sel("sb"), yes, sel("exit")]);
    expect(fake.prompts.log[1]?.offered).toEqual(["efi", "sb", BACK]);
    expect(api.mutations()).toEqual([{ method: "resetUefiVariables", vm: "sb" }]);
    expect(fake.output()).toContain("UEFI variables of sb were reset");
  });

  it("Reset TPM offers only VMs with a TPM, and no means no", async () => {
    const api = new FakeApi();
    api.add("a");
    api.add("t", { tpm: true });
    const fake = await run(api, [
      sel("reset-tpm"),
      sel("t"),
      no,
      sel("reset-tpm"),
      sel("t"),
      yes,
      sel("exit"),
    ]);
    expect(fake.prompts.log[1]?.offered).toEqual(["t", BACK]);
    expect(api.mutations()).toEqual([{ method: "resetTpm", vm: "t" }]);
  });

  it("Reset TPM with no TPM VMs says so", async () => {
    const api = new FakeApi();
    api.add("a");
    const fake = await run(api, [sel("reset-tpm"), sel("exit")]);
    expect(fake.output()).toContain("No VM has a TPM");
    expect(api.mutations()).toEqual([]);
  });

  it("Show QEMU command prints the argv shell-quoted", async () => {
    const api = new FakeApi();
    api.add("vm1");
    api.qemuArgv = ["qemu-system-x86_64", "-name", "vm 1", "-smbios", "type=1,serial=it's"];
    const fake = await run(api, [sel("qemu"), sel("vm1"), sel("exit")]);
    expect(api.calls.find((c) => c.method === "qemuCommand")?.vm).toBe("vm1");
    expect(fake.output()).toContain(
      ["qemu-system-x86_64 \\", "  -name 'vm 1' \\", "  -smbios 'type=1,serial=it'\\''s'"].join(
        "\n",
      ),
    );
  });

  it("Write post-install script prints the path", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [sel("script"), sel("vm1"), sel("exit")]);
    expect(api.mutations()).toEqual([{ method: "createPostInstallScript", vm: "vm1" }]);
    expect(fake.output()).toContain("/fake/home/vm1/shared/set_identifiers.sh");
  });

  it("an unexpected error is one line and the menu carries on", async () => {
    const api = new FakeApi();
    api.add("vm1");
    api.fail.qemuCommand = new Error("EACCES: permission denied, open '/x'\n    more");
    const fake = await run(api, [sel("qemu"), sel("vm1"), sel("qemu"), sel("vm1"), sel("exit")]);
    expect(fake.output()).toContain("✖ failed: EACCES: permission denied, open '/x' more");
    expect(api.calls.filter((c) => c.method === "qemuCommand")).toHaveLength(2);
  });

  it("a GlintError from any option is shown on one line", async () => {
    const api = new FakeApi();
    api.add("vm1");
    api.fail.createPostInstallScript = new GlintError("cannot write\nthe script");
    const fake = await run(api, [sel("script"), sel("vm1"), sel("exit")]);
    expect(fake.output()).toContain("✖ cannot write the script");
  });
});

describe("no VMs yet: create one", () => {
  it("offers to create a VM, validates the name, and calls createVm", async () => {
    const api = new FakeApi();
    const fake = await run(api, [
      yes,
      typed("Bad_Name", "-x", "vm1"),
      typed(""),
      typed("0", "2x", "8g"),
      sel("uefi"),
      yes,
      sel("exit"),
    ]);
    expect(fake.prompts.log[0]?.message).toContain("no VMs");
    expect(fake.prompts.log[1]?.rejections).toHaveLength(2);
    expect(fake.prompts.log[1]?.rejections?.[0]).toMatch(/lowercase/);
    // No base image: a disk size instead of the overlay question.
    expect(fake.prompts.log.map((l) => l.kind)).toEqual([
      "confirm",
      "input",
      "input",
      "input",
      "select",
      "confirm",
      "select",
    ]);
    expect(fake.prompts.log[3]?.rejections).toHaveLength(2);
    expect(fake.prompts.log[4]?.offered).toEqual(["bios", "uefi", "uefi-secure"]);
    expect(api.mutations()).toEqual([
      {
        method: "createVm",
        vm: "vm1",
        options: { firmware: "uefi", tpm: true, diskSize: "8G", onProgress: expect.any(Function) },
      },
    ]);
    const ids = api.vms.get("vm1")?.ids;
    expect(fake.output()).toContain(ids?.vm_uuid);
    expect(fake.spinners[0]?.stopped).toBe(true);
  });

  it("with a base image: checks that it exists and asks about the overlay", async () => {
    const dir = await tempDir("glint-menu-");
    const base = path.join(dir, "base.qcow2");
    await fs.writeFile(base, "not really qcow2");
    const api = new FakeApi();
    const fake = await run(api, [
      yes,
      typed("vm1"),
      typed(path.join(dir, "missing.qcow2"), dir, base),
      yes,
      sel("bios"),
      no,
      sel("exit"),
    ]);
    expect(fake.prompts.log[2]?.rejections?.[0]).toMatch(/no such file/);
    expect(fake.prompts.log[2]?.rejections).toHaveLength(2);
    expect(api.mutations()).toEqual([
      {
        method: "createVm",
        vm: "vm1",
        options: {
          base,
          overlay: true,
          firmware: "bios",
          tpm: false,
          onProgress: expect.any(Function),
        },
      },
    ]);
  });

  it("refuses the name of an existing VM", async () => {
    const api = new FakeApi();
    api.add("vm1");
    const fake = await run(api, [
      sel("create"),
      typed("vm1", "vm2"),
      typed(""),
      typed(""),
      sel("bios"),
      no,
      sel("exit"),
    ]);
    expect(fake.prompts.log[1]?.rejections?.[0]).toContain("already");
    expect(api.mutations().map((c) => c.vm)).toEqual(["vm2"]);
  });

  it("Ctrl-C half-way through creating creates nothing, then asks again", async () => {
    const api = new FakeApi();
    const fake = await run(api, [yes, typed("vm1"), typed(""), typed(""), ctrlC("select"), no]);
    expect(api.mutations()).toEqual([]);
    expect(fake.output()).toContain("Cancelled; nothing was changed.");
  });

  it("declining leaves without calling anything", async () => {
    const api = new FakeApi();
    await run(api, [no]);
    expect(api.mutations()).toEqual([]);
  });
});

describe("formatCommand", () => {
  it("is one option per line and pastes back into a shell as the same argv", async () => {
    const argv = ["qemu-system-x86_64", "-m", "512M", "-name", "a b", "-nographic", "-uuid", "x$y"];
    const text = formatCommand(argv);
    expect(text.split("\n")).toHaveLength(5);
    const { stdout } = await promisify(execFile)("bash", [
      "-c",
      `printf '%s\\n' ${text.replace(/^qemu-system-x86_64/, "")}`,
    ]);
    expect(stdout.trimEnd().split("\n")).toEqual(argv.slice(1));
  });
});

describe("startMenu", () => {
  it("without a TTY returns 2 and points to the commands, touching nothing", async () => {
    const api = new FakeApi();
    const messages: string[] = [];
    const code = await startMenu(api, { isTTY: false, env: {}, stderr: (t) => messages.push(t) });
    expect(code).toBe(2);
    expect(messages.join("\n")).toBe(NOT_A_TTY_MESSAGE);
    expect(NOT_A_TTY_MESSAGE).toMatch(/glint show/);
    expect(NOT_A_TTY_MESSAGE).toMatch(/regen disk/);
    expect(NOT_A_TTY_MESSAGE).toMatch(/nuke/);
    expect(api.calls).toEqual([]);
  });

  it("without a TTY writes to stderr by default", async () => {
    const spy = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      expect(await startMenu(new FakeApi(), { isTTY: false, env: {} })).toBe(2);
      expect(String(spy.mock.calls[0]?.[0])).toContain("needs an interactive terminal");
    } finally {
      spy.mockRestore();
    }
  });
});

describe("Esc", () => {
  it("aborts the prompt being shown (a real @inquirer select)", async () => {
    const keys = new EventEmitter();
    const prompts = withEscape({ select, input: vi.fn(), confirm: vi.fn() } as never, keys);
    const { answer, events } = await render(prompts.select, {
      message: "Pick",
      choices: ["a", "b"],
    });
    events.keypress("down");
    keys.emit("keypress", undefined, { name: "x" });
    // What node:readline emits for a lone Esc.
    keys.emit("keypress", undefined, { name: "escape", meta: true, sequence: "\x1b" });
    await expect(answer).rejects.toMatchObject({ name: "AbortPromptError" });
    prompts.dispose();
    expect(keys.listenerCount("keypress")).toBe(0);
  });

  it("other keys do not abort, and a finished prompt is not aborted later", async () => {
    const keys = new EventEmitter();
    const prompts = withEscape({ select, input: vi.fn(), confirm: vi.fn() } as never, keys);
    const { answer, events } = await render(prompts.select, {
      message: "Pick",
      choices: ["a", "b"],
    });
    keys.emit("keypress", "q", { name: "q" });
    keys.emit("keypress", "\r", { name: "return" });
    events.keypress("down");
    events.keypress("enter");
    await expect(answer).resolves.toBe("b");
    keys.emit("keypress", undefined, { name: "escape" });
    prompts.dispose();
  });

  it("recognises Esc as node:readline decodes it from a terminal", async () => {
    const stdin = new PassThrough();
    readline.emitKeypressEvents(stdin);
    const waiting = (_config: unknown, context?: { signal?: AbortSignal }) =>
      new Promise<string>((_resolve, reject) => {
        context?.signal?.addEventListener("abort", () => reject(promptError("AbortPromptError")));
      });
    const prompts = withEscape({ select, input: waiting, confirm: vi.fn() } as never, stdin);
    const pending = prompts.input({ message: "x" });
    stdin.write("\x1b");
    await expect(pending).rejects.toMatchObject({ name: "AbortPromptError" });
    // An arrow key (an escape sequence) is not Esc.
    const second = prompts.input({ message: "y" });
    let settled = false;
    second.then(
      () => (settled = true),
      () => (settled = true),
    );
    stdin.write("\x1b[B");
    await new Promise((r) => setTimeout(r, 700));
    expect(settled).toBe(false);
    prompts.dispose();
  });

  it("passes a signal to the wrapped prompt and honours an outer signal", async () => {
    const keys = new EventEmitter();
    const seen: (AbortSignal | undefined)[] = [];
    const fakeInput = (_config: unknown, context?: { signal?: AbortSignal }) =>
      new Promise<string>((_resolve, reject) => {
        seen.push(context?.signal);
        context?.signal?.addEventListener("abort", () => reject(promptError("AbortPromptError")));
      });
    const prompts = withEscape({ select, input: fakeInput, confirm: vi.fn() } as never, keys);
    const outer = new AbortController();
    const pending = prompts.input({ message: "x" }, { signal: outer.signal });
    outer.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortPromptError" });
    expect(seen[0]).toBeInstanceOf(AbortSignal);
    expect(seen[0]).not.toBe(outer.signal);
    prompts.dispose();
  });
});

describe("spinner", () => {
  it("without animation prints each message once, on its own line", () => {
    const written: string[] = [];
    const s = createSpinner("Working…", {
      animate: false,
      stream: { write: (c) => written.push(c) },
    });
    s.update("Working…");
    s.update("step 2");
    s.stop("done");
    s.stop("again");
    expect(written).toEqual(["Working…\n", "step 2\n", "done\n"]);
  });

  it("animated: redraws on a timer and clears the line when stopped", () => {
    vi.useFakeTimers();
    try {
      const written: string[] = [];
      const s = createSpinner("Working", {
        animate: true,
        intervalMs: 10,
        stream: { write: (c) => written.push(c) },
      });
      vi.advanceTimersByTime(35);
      const frames = written.length;
      expect(frames).toBeGreaterThanOrEqual(4);
      expect(written.every((w) => w.startsWith("\r\x1b[2K") && w.endsWith("Working"))).toBe(true);
      s.stop();
      expect(written.at(-1)).toBe("\r\x1b[2K");
      vi.advanceTimersByTime(100);
      expect(written.length).toBe(frames + 1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("colour", () => {
  it("follows NO_COLOR and the TTY", () => {
    expect(colorAllowed(true, {})).toBe(true);
    expect(colorAllowed(false, {})).toBe(false);
    expect(colorAllowed(true, { NO_COLOR: "1" })).toBe(false);
    expect(colorAllowed(true, { NO_COLOR: "" })).toBe(true);
    expect(colorAllowed(true, { TERM: "dumb" })).toBe(false);
  });
});

describe("confirmations follow the CLI's rules", () => {
  it("every option that changes a VM asks first: no, Esc or a wrong name calls nothing", async () => {
    const api = new FakeApi();
    api.add("vm", { firmware: "uefi", tpm: true, overlay: true });
    const fake = await run(api, [
      sel("regen-disk"),
      sel("vm"),
      no,
      sel("regen-base"),
      sel("vm"),
      no,
      sel("reset-uefi"),
      sel("vm"),
      no,
      sel("reset-tpm"),
      sel("vm"),
      esc("confirm"),
      sel("nuke"),
      sel("vm"),
      typed("vx"),
      sel("exit"),
    ]);
    expect(api.mutations()).toEqual([]);
    // Each question was asked (yes/no for regen and reset, the typed name for NUKE, as the CLI does).
    expect(fake.prompts.log.filter((p) => p.kind === "confirm")).toHaveLength(4);
    expect(fake.prompts.log.filter((p) => p.kind === "input")).toHaveLength(1);
  });

  it("yes to each question runs exactly the option chosen", async () => {
    const api = new FakeApi();
    api.add("vm", { firmware: "uefi", tpm: true, overlay: true });
    await run(api, [
      sel("regen-disk"),
      sel("vm"),
      yes,
      sel("regen-base"),
      sel("vm"),
      yes,
      sel("reset-uefi"),
      sel("vm"),
      yes,
      sel("reset-tpm"),
      sel("vm"),
      yes,
      sel("nuke"),
      sel("vm"),
      typed("vm"),
      sel("exit"),
    ]);
    expect(api.mutations().map((m) => m.method)).toEqual([
      "regenerateDiskIdentifiers",
      "regenerateBaseIdentifiers",
      "resetUefiVariables",
      "resetTpm",
      "nukeAndRegenerateAll",
    ]);
  });
});
