/**
 * `glint menu` in a real terminal: tmux runs `node dist/cli/main.js menu`, the
 * test sends keys and reads the screen. View a VM, regenerate its overlay,
 * back out of NUKE with Esc, NUKE it typing the name, exit; then check the
 * files on disk.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote } from "../../src/cli/shell.js";
import { runCli } from "../support/cli.js";
import { CLI, ROOT } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

const exec = promisify(execFile);
const SOCKET = `glint-menu-e2e-${process.pid}`;
const SESSION = "menu";
const MAIN_MENU = "What would you like to do?";

async function tmux(...args: string[]): Promise<string> {
  const { stdout } = await exec("tmux", ["-L", SOCKET, ...args]);
  return stdout;
}

/** The whole pane, scrollback included, wrapped lines joined. */
async function screen(): Promise<string> {
  return tmux("capture-pane", "-p", "-J", "-S", "-", "-t", SESSION);
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/** Poll the pane until `ok(screen)`; on timeout fail showing the screen. */
async function waitFor(what: string, ok: (s: string) => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    last = await screen();
    if (ok(last)) return last;
    if (last.includes("[menu exited with")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}; the terminal shows:\n${last}`);
}

const waitForText = (text: string, times = 1) =>
  waitFor(`"${text}" (×${times})`, (s) => count(s, text) >= times);

async function keys(...names: string[]): Promise<void> {
  await tmux("send-keys", "-t", SESSION, ...names);
}

async function typeText(text: string): Promise<void> {
  await tmux("send-keys", "-t", SESSION, "-l", text);
}

interface Ids {
  vm_uuid: string;
  disk_uuid: string;
  mac_address: string;
  machine_id: string;
  [k: string]: unknown;
}

async function readJson(file: string): Promise<Ids> {
  return JSON.parse(await fs.readFile(file, "utf8")) as Ids;
}

describe("glint menu in a terminal (tmux)", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await tempDir("glint-menu-e2e-");
  });

  afterAll(async () => {
    const socket = await tmux("display-message", "-p", "#{socket_path}").catch(() => "");
    await exec("tmux", ["-L", SOCKET, "kill-server"]).catch(() => undefined);
    if (socket.trim()) await fs.rm(socket.trim(), { force: true });
  });

  it("views, regenerates the overlay, NUKEs (Esc first, then the typed name) and exits", async () => {
    // tmux and qemu-img are required: a missing tool fails the test, it is not skipped.
    await exec("tmux", ["-V"]);
    const home = path.join(dir, "home");
    const base = path.join(dir, "base.qcow2");
    await exec("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
    const created = await runCli(["create", "vm1", "--home", home, "--base", base, "--overlay"]);
    expect(created.code, `glint create failed:\n${created.stderr}`).toBe(0);
    const config = JSON.parse(await fs.readFile(path.join(home, "vm1", "config.json"), "utf8"));
    expect(config.overlay).toBe(true);

    const shell = `${shellQuote([process.execPath, CLI, "menu", "--home", home])}; echo "[menu exited with $?]"; sleep 600`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.GLINT_HOME;
    delete env.GLINT_DEBUG;
    delete env.TMUX;
    await exec(
      "tmux",
      [
        "-L",
        SOCKET,
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "200",
        "-y",
        "50",
        "-c",
        ROOT,
        shell,
      ],
      { env },
    );

    const idsFile = path.join(home, "vm1", "identifiers.json");
    const original = await readJson(idsFile);

    // 1. View VM identifiers → vm1.
    await waitForText(MAIN_MENU, 1);
    await keys("Enter");
    await waitForText("View the identifiers of which VM?");
    await keys("Enter");
    let s = await waitForText(MAIN_MENU, 2);
    for (const v of [
      original.vm_uuid,
      original.machine_id,
      original.mac_address,
      original.disk_uuid,
    ])
      expect(s).toContain(v);
    expect(await readJson(idsFile)).toEqual(original);

    // 2. Regenerate overlay with fresh identifiers → vm1 → yes.
    await keys("Down", "Enter");
    await waitForText("Regenerate the overlay of which VM?");
    await keys("Enter");
    await waitForText('Regenerate the overlay of "vm1"?');
    await keys("y", "Enter");
    s = await waitForText(MAIN_MENU, 3);
    expect(s).toMatch(/Kept: +VM UUID, Machine ID, MAC address/);
    expect(s).toMatch(/Changed: +Disk UUID/);
    const afterRegen = await readJson(idsFile);
    expect(afterRegen.disk_uuid).not.toBe(original.disk_uuid);
    expect(afterRegen.vm_uuid).toBe(original.vm_uuid);
    expect(afterRegen.mac_address).toBe(original.mac_address);
    expect(afterRegen.machine_id).toBe(original.machine_id);

    // 3. NUKE → vm1 → Esc at the name prompt: back to the menu, nothing changed.
    await keys("Down", "Down", "Down", "Enter");
    await waitForText("NUKE which VM?");
    await keys("Enter");
    await waitForText('Type the VM name "vm1"');
    expect(await screen()).toContain(afterRegen.vm_uuid);
    await keys("Escape");
    await waitForText("Cancelled; nothing was changed.");
    await waitForText(MAIN_MENU, 4);
    expect(await readJson(idsFile)).toEqual(afterRegen);

    // 4. NUKE → vm1 → type the name.
    await keys("Down", "Down", "Down", "Enter");
    await waitForText("NUKE which VM?", 2);
    await keys("Enter");
    await waitForText('Type the VM name "vm1"', 2);
    await typeText("vm1");
    await keys("Enter");
    s = await waitForText(MAIN_MENU, 5);
    expect(s).toContain("NUKE VM session (complete reset): vm1");
    const afterNuke = await readJson(idsFile);
    expect(afterNuke.vm_uuid).not.toBe(afterRegen.vm_uuid);
    expect(afterNuke.vm_uuid).not.toBe(original.vm_uuid);
    expect(afterNuke.disk_uuid).not.toBe(afterRegen.disk_uuid);
    expect(s).toContain(afterNuke.vm_uuid); // old beside new
    expect(s).toContain(afterRegen.vm_uuid);

    // 5. Exit (Up wraps to the last item).
    await keys("Up", "Enter");
    s = await waitForText("[menu exited with 0]");
    expect(s).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack trace
    expect(s).not.toContain("PromptError");

    // history/ holds the replaced identities.
    const historyDir = path.join(home, "vm1", "history");
    const files = (await fs.readdir(historyDir)).filter((f) => /_identifiers-.*\.json$/.test(f));
    const byReason = async (reason: string) =>
      Promise.all(
        files
          .filter((f) => f.includes(`_${reason}_`))
          .map((f) => readJson(path.join(historyDir, f))),
      );
    const disk = await byReason("disk");
    const nuke = await byReason("nuke");
    expect(disk.map((x) => [x.vm_uuid, x.disk_uuid])).toEqual([
      [original.vm_uuid, original.disk_uuid],
    ]);
    expect(nuke.map((x) => [x.vm_uuid, x.disk_uuid])).toEqual([
      [afterRegen.vm_uuid, afterRegen.disk_uuid],
    ]);
  }, 120_000);
});
