/**
 * The bulk progress bar (src/cli/progress.ts): drawn on a terminal, never
 * with --json or without one. Through a real pseudo-terminal (`script`) and
 * with an injected terminal-like stream.
 */
import path from "node:path";
import { Writable } from "node:stream";
import { beforeAll, describe, expect, it } from "vitest";
import { bulkProgress } from "../../src/cli/progress.js";
import { runCli, runCliOk } from "../support/cli.js";
import { run } from "../support/exec.js";
import { CLI } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

/** A stream that says it is a terminal and keeps what was written. */
function fakeTerminal(
  isTTY = true,
): Writable & { isTTY: boolean; columns: number; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return Object.assign(stream, { isTTY, columns: 100, text: () => text });
}

/** `glint ARGS` on a pseudo-terminal (util-linux `script`); resolves with everything it printed. */
async function onTerminal(args: string[]): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(" ");
  const r = await run("script", ["-qec", command, "/dev/null"], { timeoutMs: 120_000 });
  return { code: r.code, output: r.stdout };
}

let home: string;
beforeAll(async () => {
  home = path.join(await tempDir("glint-cli-progress-"), "home");
  for (const vm of ["p1", "p2", "p3"]) {
    await runCliOk(["create", vm, "--no-sysprep", "--home", home]);
  }
}, 120_000);

describe("bulk progress bar", () => {
  it("is drawn on a terminal, under one result line per VM, and removed at the end", async () => {
    const r = await onTerminal(["--home", home, "seed", "--all"]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain("0/3 VMs, 0 failed");
    expect(r.output).toContain("3/3 VMs, 0 failed");
    for (const vm of ["p1", "p2", "p3"]) expect(r.output).toContain(`${vm}: wrote`);
    // The bar's line is cleared at the end (cli-progress clearOnComplete).
    expect(r.output.trimEnd().endsWith("\x1b[2K")).toBe(true);
  });

  it("counts failures", async () => {
    const r = await onTerminal(["--home", home, "seed", "p1", "nope", "p2"]);
    expect(r.code).toBe(1);
    expect(r.output).toContain("3/3 VMs, 1 failed");
    expect(r.output).toContain("nope: FAILED");
  });

  it("is not drawn with --json, even on a terminal", async () => {
    const r = await onTerminal(["--home", home, "seed", "--all", "--json"]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toContain("VMs,");
    expect(r.output).not.toContain("\x1b[");
    const json = JSON.parse(r.output.replaceAll("\r", "")) as { vm: string }[];
    expect(json.map((e) => e.vm)).toEqual(["p1", "p2", "p3"]);
  });

  it("is not drawn when the output is not a terminal", async () => {
    const r = await runCli(["--home", home, "seed", "--all"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).not.toContain("\x1b[");
    expect(r.stdout.trim().split("\n")).toHaveLength(3);
  });

  it("draws on an injected terminal stream, and nothing on a non-terminal, with --json or for one VM", async () => {
    const tty = fakeTerminal();
    const bar = await bulkProgress(2, tty, false);
    const printed: string[] = [];
    bar.line(() => printed.push("a: ok"));
    bar.tick(false);
    bar.line(() => printed.push("b: FAILED"));
    bar.tick(true);
    bar.stop();
    expect(printed).toEqual(["a: ok", "b: FAILED"]);
    expect(tty.text()).toContain("0/2 VMs, 0 failed");
    expect(tty.text()).toContain("2/2 VMs, 1 failed");
    for (const [stream, json, total] of [
      [fakeTerminal(false), false, 3],
      [fakeTerminal(), true, 3],
      [fakeTerminal(), false, 1],
    ] as const) {
      const none = await bulkProgress(total, stream, json);
      let called = false;
      none.line(() => {
        called = true;
      });
      none.tick(false);
      none.stop();
      expect(called).toBe(true);
      expect(stream.text()).toBe("");
    }
  });
});
