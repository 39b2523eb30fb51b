/**
 * Values read from files never reach the terminal raw: escape sequences in a
 * corrupt identifiers.json, its error message or a history file name are
 * printed escaped by `show`, `list` and `history`, in text and JSON.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { printable } from "../../src/cli/printable.js";
import { runCli } from "../support/cli.js";
import { TERMINAL_CONTROL_RE } from "../support/hostile.js";
import { tempDir } from "../support/tmp.js";

const OSC_TITLE = "\u001b]0;pwned\u0007";
const CLEAR = "\u001b[2J";
const CSI_C1 = "\u009b31m";

let template: string;
beforeAll(async () => {
  template = await tempDir("glint-escapes-template-");
  const r = await runCli(["create", "vm", "--home", template]);
  expect(r.code, r.stderr).toBe(0);
});

let home: string;
let ids: string;
beforeEach(async () => {
  home = await tempDir("glint-escapes-");
  await fs.cp(template, home, { recursive: true });
  ids = path.join(home, "vm", "identifiers.json");
});

function expectClean(text: string): void {
  expect(text).not.toMatch(TERMINAL_CONTROL_RE);
}

describe("printable", () => {
  it("escapes control characters and keeps text, tabs and newlines", () => {
    expect(printable(`a${OSC_TITLE}b\tc\nd${CSI_C1}`)).toBe(
      "a\\u001b]0;pwned\\u0007b\tc\nd\\u009b31m",
    );
    expect(printable("plain ünïcode")).toBe("plain ünïcode");
  });

  it("keeps JSON valid: an escaped JSON text parses to the same value", () => {
    const value = { k: `x${CSI_C1}\u007f\u202ey` };
    const text = printable(JSON.stringify(value));
    expectClean(text);
    expect(JSON.parse(text)).toEqual(value);
  });
});

const CORRUPTIONS: [string, (raw: string) => string][] = [
  [
    "an unknown key holding escapes",
    (raw) => {
      const data = JSON.parse(raw);
      data[`${OSC_TITLE}${CLEAR}`] = 1;
      return JSON.stringify(data);
    },
  ],
  [
    "a bad value holding escapes",
    (raw) => {
      const data = JSON.parse(raw);
      data.cpu_serial = `CPU${CSI_C1}${OSC_TITLE}`;
      return JSON.stringify(data);
    },
  ],
  ["invalid JSON starting with escapes", () => `${OSC_TITLE}${CLEAR}{`],
];

describe.each(CORRUPTIONS)("identifiers.json with %s", (_what, corrupt) => {
  beforeEach(async () => {
    await fs.writeFile(ids, corrupt(await fs.readFile(ids, "utf8")));
  });

  it.each([[["show", "vm"]], [["show"]], [["list"]], [["list", "--json"]], [["show", "--json"]]])(
    "`glint %j` prints it escaped",
    async (args) => {
      const r = await runCli([...args, "--home", home]);
      expectClean(r.stdout);
      expectClean(r.stderr);
      expect(`${r.stdout}${r.stderr}`).toMatch(/\\u001b|\\u009b/);
    },
  );
});

describe("history", () => {
  it("prints a history file name holding escapes escaped, in text and JSON", async () => {
    const history = path.join(home, "vm", "history");
    await fs.mkdir(history, { recursive: true });
    const name = `2026-01-01T00-00-00.000Z_${OSC_TITLE}${CSI_C1}_identifiers-abcdef.json`;
    await fs.writeFile(path.join(history, name), `${CLEAR}not json`);
    const text = await runCli(["history", "vm", "--home", home]);
    expect(text.code, text.stderr).toBe(0);
    expectClean(text.stdout);
    expect(text.stdout).toContain("\\u001b]0;pwned\\u0007");
    const json = await runCli(["history", "vm", "--json", "--home", home]);
    expect(json.code, json.stderr).toBe(0);
    expectClean(json.stdout);
    const entries = JSON.parse(json.stdout) as { reason: string }[];
    expect(entries.map((e) => e.reason)).toContain(`${OSC_TITLE}${CSI_C1}`);
  });
});
