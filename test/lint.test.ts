/**
 * `npm run lint` fails on an import cycle: the project's biome.json turns on
 * noImportCycles (type imports count). Checked on two cyclic files under
 * the same configuration, outside the source tree.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { ROOT } from "./support/paths.js";
import { tempDir } from "./support/tmp.js";

const run = promisify(execFile);

it("biome reports an import cycle as an error with the project's configuration", async () => {
  const dir = await tempDir("glint-lint-");
  const config = JSON.parse(await fs.readFile(path.join(ROOT, "biome.json"), "utf8"));
  config.vcs = { enabled: false };
  await fs.writeFile(path.join(dir, "biome.json"), JSON.stringify(config));
  await fs.writeFile(
    path.join(dir, "a.ts"),
    'import type { B } from "./b.js";\nexport type A = B[];\n',
  );
  await fs.writeFile(
    path.join(dir, "b.ts"),
    'import type { A } from "./a.js";\nexport type B = A | 1;\n',
  );
  const biome = createRequire(import.meta.url).resolve("@biomejs/biome/bin/biome");
  const result = await run(process.execPath, [biome, "lint", "."], { cwd: dir }).then(
    () => ({ code: 0, out: "" }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      out: e.stdout + e.stderr,
    }),
  );
  expect(result.code).not.toBe(0);
  expect(result.out).toContain("noImportCycles");
});
