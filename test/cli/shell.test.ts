/** Shell quoting of printed commands (src/cli/shell.ts). */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { shellQuote } from "../../src/cli/shell.js";

const execFileAsync = promisify(execFile);

/** What a POSIX shell makes of `text` as the arguments of printf (test oracle only). */
async function wordsFromShell(text: string): Promise<string[]> {
  const { stdout } = await execFileAsync("sh", ["-c", `printf '%s\\0' ${text}`]);
  return stdout.split("\0").slice(0, -1);
}

describe("shellQuote", () => {
  it("quotes for a POSIX shell so that the words read back unchanged", async () => {
    const argv = [
      "qemu-system-x86_64",
      "-name",
      "a b",
      "-drive",
      "file=/x,,y",
      "it's",
      "$HOME",
      "*",
      "a\nb",
    ];
    const text = shellQuote(argv);
    expect(text.startsWith("qemu-system-x86_64 -name 'a b' ")).toBe(true);
    expect(await wordsFromShell(text)).toEqual(argv);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ minLength: 1, unit: "binary-ascii" }).filter((w) => !w.includes("\0")),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        async (words) => {
          expect(await wordsFromShell(shellQuote(words))).toEqual(words);
        },
      ),
      { numRuns: 60 },
    );
  });
});
