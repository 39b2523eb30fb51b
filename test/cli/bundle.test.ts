/**
 * The `glint` bin is an esbuild bundle (scripts/build.mjs): dist/cli/main.js
 * plus chunks beside it. These tests check the built output itself: every
 * import it makes resolves, the code loaded at start leaves out what only
 * some commands need, and a copy of the package still finds its own
 * templates. (Every command's behaviour is tested through the same bin by
 * the other test/cli/ files.)
 */
import { execFile } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, runCli, tempDir } from "../fixtures/helpers.js";

const CLI_DIR = path.dirname(CLI);

interface Metafile {
  outputs: Record<
    string,
    {
      entryPoint?: string;
      inputs: Record<string, unknown>;
      imports: { path: string; kind: string; external?: boolean }[];
    }
  >;
}
const meta = JSON.parse(
  readFileSync(path.join(ROOT, "dist", "cli-bundle.json"), "utf8"),
) as Metafile;
const outputs = Object.entries(meta.outputs).filter(([file]) => file.endsWith(".js"));

/** The bundle's own files that `file` imports with `kind`s in `kinds`. */
function importsOf(file: string, kinds: readonly string[]): string[] {
  return (meta.outputs[file]?.imports ?? [])
    .filter((i) => kinds.includes(i.kind) && !i.external && !i.path.startsWith("node:"))
    .map((i) => i.path);
}

/** The output files node loads for `glint` before running any command. */
function loadedAtStart(): Set<string> {
  const seen = new Set<string>();
  const todo = ["dist/cli/main.js"];
  for (let file = todo.pop(); file !== undefined; file = todo.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    todo.push(...importsOf(file, ["import-statement"]));
  }
  return seen;
}

/** Module specifiers in a built file: static/dynamic imports and require() calls. */
function specifiers(code: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s*)"([^"]+)"/g;
  return [...code.matchAll(re)].map((m) => m[1] ?? "");
}

describe("the CLI bundle", () => {
  it("is dist/cli/main.js with its chunks, all in dist/cli/ (so ../../templates/ resolves)", () => {
    expect(outputs.map(([file]) => file)).toContain("dist/cli/main.js");
    expect(meta.outputs["dist/cli/main.js"]?.entryPoint).toBe("src/cli/main.ts");
    for (const [file] of outputs) expect(path.dirname(file), file).toBe("dist/cli");
    // src/guest/render.ts is in the bundle, at the same depth as in tsc's dist/guest/.
    expect(outputs.some(([, o]) => "src/guest/render.ts" in o.inputs)).toBe(true);
  });

  it("imports only node builtins, its own chunks and the package's dependencies", async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const builtins = new Set(builtinModules);
    const requireFromCli = createRequire(CLI);
    const resolvable = (spec: string) => {
      if (builtins.has(spec.replace(/^node:/, ""))) return;
      // Left out of the bundle: must be a dependency that resolves from the bin.
      expect(Object.keys(pkg.dependencies), spec).toContain(spec);
      expect(requireFromCli.resolve(spec), spec).toBeTruthy();
    };
    let checked = 0;
    for (const [file, output] of outputs) {
      // What esbuild saw: static and dynamic imports, require() calls.
      for (const i of output.imports) {
        if (i.path.startsWith("dist/"))
          expect(
            outputs.map(([f]) => f),
            file,
          ).toContain(i.path);
        else resolvable(i.path);
        checked++;
      }
      // What the file says: every literal specifier.
      const code = await fs.readFile(path.join(ROOT, file), "utf8");
      for (const spec of specifiers(code)) {
        if (spec.startsWith("./")) {
          await expect(fs.stat(path.join(CLI_DIR, spec)), `${file}: ${spec}`).resolves.toBeTruthy();
        } else resolvable(spec);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
    // yaml is loaded on first use through createRequire(), which esbuild leaves alone.
    resolvable("yaml");
  });

  it("loads neither the prompt library nor the yaml library at start", () => {
    const start = loadedAtStart();
    expect(start.size).toBeGreaterThan(0);
    for (const file of start) {
      const inputs = Object.keys(meta.outputs[file]?.inputs ?? {});
      expect(
        inputs.filter((i) => /node_modules\/(@inquirer|yaml)\//.test(i)),
        file,
      ).toEqual([]);
      expect(inputs, file).not.toContain("src/cli/menu/index.ts");
    }
    // The menu and its prompt library are a chunk that main.js loads with import().
    const menu = outputs.find(([, o]) => "src/cli/menu/index.ts" in o.inputs)?.[0];
    expect(menu).toBeDefined();
    expect(start.has(menu as string)).toBe(false);
  });
});

describe("the built glint", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir("glint-bundle-"));
  });
  afterAll(() => cleanup());

  it("prints its help and version", async () => {
    const help = await runCli(["--help"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: glint /m);
    for (const cmd of ["create", "list", "show", "regen", "nuke", "run", "menu"])
      expect(help.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, "m"));
    const version = await runCli(["--version"]);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("a copy of the package in another directory renders its own templates", async () => {
    // Lay out an installed package: dist/, templates/, package.json and
    // node_modules (for yaml, which is not bundled).
    const pkg = path.join(dir, "pkg");
    await fs.mkdir(pkg);
    await fs.cp(path.join(ROOT, "dist"), path.join(pkg, "dist"), { recursive: true });
    await fs.cp(path.join(ROOT, "templates"), path.join(pkg, "templates"), { recursive: true });
    await fs.copyFile(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
    await fs.symlink(path.join(ROOT, "node_modules"), path.join(pkg, "node_modules"));
    // Mark the copy's templates so that the output shows which ones were read.
    const script = path.join(pkg, "templates", "set_identifiers.sh.tmpl");
    await fs.writeFile(
      script,
      (await fs.readFile(script, "utf8")).replace(
        /^#!\/bin\/sh\n/,
        "#!/bin/sh\n# copied-package-marker\n",
      ),
    );

    const home = path.join(dir, "home");
    const bin = path.join(pkg, "dist", "cli", "main.js");
    // runCli runs the repository's bin; this runs the copy's.
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [bin, ...args, "--home", home], (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
        );
      });
    const created = await run("create", "vm-1", "--json");
    expect(created.code, created.stderr).toBe(0);
    // The post-install script on the share came from the copy's template...
    const written = await fs.readFile(
      path.join(home, "vm-1", "shared", "set_identifiers.sh"),
      "utf8",
    );
    expect(written).toContain("# copied-package-marker");
    const printed = await run("script", "vm-1", "--stdout");
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toContain("# copied-package-marker");
    // ...and seed.iso (meta-data checked as YAML by the lazily loaded yaml library).
    await expect(fs.stat(path.join(home, "vm-1", "seed.iso"))).resolves.toBeTruthy();
    const seed = await run("seed", "vm-1", "--json");
    expect(seed.code, seed.stderr).toBe(0);

    const show = await run("show", "vm-1", "--json");
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ schema_version: 1 });
    const list = await run("list", "--json");
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: "vm-1", ok: true }]);
  });
});
