/**
 * The `glint` bin as built (scripts/build.mjs): dist/cli/main.js, a small
 * loader (src/cli/bin.ts), runs dist/cli/glint.cjs, the whole CLI bundled by
 * esbuild, with the V8 code cache the build wrote. These tests check the
 * built output itself: what it loads and when, that the cache is used, and
 * that a copy of the package finds its own assets. (Every command's
 * behaviour is tested through the same bin by the other test/cli/ files.)
 */
import { execFile } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, FIXTURES, ROOT } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

const BUNDLE = path.join(ROOT, "dist", "cli", "glint.cjs");

interface Metafile {
  outputs: Record<
    string,
    { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string }[] }
  >;
}
const meta = JSON.parse(
  readFileSync(path.join(ROOT, "dist", "cli-bundle.json"), "utf8"),
) as Metafile;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `node [nodeArgs] bin args` (no TTY) and collect its output. */
function run(nodeArgs: readonly string[], bin: string, args: readonly string[], env = {}) {
  return new Promise<Run>((resolve) => {
    execFile(
      process.execPath,
      [...nodeArgs, bin, ...args],
      { env: { ...process.env, ...env } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface Probe {
  requested: string[];
  builtins: string[];
  scripts: { filename?: string; cachedData: boolean; cachedDataRejected?: boolean }[];
}

let dir: string;
let home: string;
let probes = 0;
beforeAll(async () => {
  dir = await tempDir("glint-bundle-");
  home = path.join(dir, "home");
});

/** Run the repository's bin with test/fixtures/module-probe.cjs preloaded. */
async function probed(...args: string[]): Promise<Run & { probe: Probe }> {
  const out = path.join(dir, `probe-${probes++}.json`);
  const r = await run(["--require", path.join(FIXTURES, "module-probe.cjs")], CLI, args, {
    GLINT_PROBE_OUT: out,
  });
  return { ...r, probe: JSON.parse(await fs.readFile(out, "utf8")) as Probe };
}

describe("the CLI bundle", () => {
  it("is one script in dist/cli/ (so that ../../assets/ resolves as from dist/guest/)", () => {
    const outputs = Object.keys(meta.outputs).filter((f) => f.endsWith(".cjs"));
    expect(outputs).toEqual(["dist/cli/glint.cjs"]);
    const inputs = Object.keys(meta.outputs["dist/cli/glint.cjs"]?.inputs ?? {});
    for (const src of ["src/cli/main.ts", "src/guest/script.ts", "src/cli/menu/index.ts"])
      expect(inputs).toContain(src);
    // The loader is not in it: it stays small and imports nothing of ours.
    expect(inputs).not.toContain("src/cli/bin.ts");
  });

  it('holds only the zod it uses (`import * as z from "zod"`, not `import { z }`)', () => {
    // `import { z } from "zod"` keeps every export of zod, its ~50 locales
    // included, and makes the bundle several times larger and slower to start.
    const inputs = Object.keys(meta.outputs["dist/cli/glint.cjs"]?.inputs ?? {});
    const zod = inputs.filter((i) => i.startsWith("node_modules/zod/"));
    expect(zod.length).toBeGreaterThan(0);
    expect(zod.filter((i) => /\/locales\/(?!(en|index)\.js$)/.test(i))).toEqual([]);
  });

  it("requires only node builtins and the package's dependencies, and has no import()", async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const builtins = new Set(builtinModules);
    const requireFromBundle = createRequire(BUNDLE);
    const resolvable = (spec: string) => {
      if (builtins.has(spec.replace(/^node:/, ""))) return;
      // Left out of the bundle: a dependency that must resolve from it.
      expect(Object.keys(pkg.dependencies), spec).toContain(spec);
      expect(requireFromBundle.resolve(spec), spec).toBeTruthy();
    };
    const code = await fs.readFile(BUNDLE, "utf8");
    const required = [...code.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1] ?? "");
    expect(required).toContain("node:fs");
    for (const spec of [
      ...required,
      ...(meta.outputs["dist/cli/glint.cjs"]?.imports ?? []).map((i) => i.path),
      // Loaded on first use through createRequire(), which esbuild leaves alone.
      "yaml",
    ])
      resolvable(spec);
    // The loader runs the bundle as a vm.Script, which cannot import().
    expect(code).not.toMatch(/\bimport\(/);
  });

  it("uses the build's code cache, and loads neither yaml nor the prompt library for show/list", async () => {
    const created = await run([], CLI, ["create", "vm-1", "--home", home, "--json"]);
    expect(created.code, created.stderr).toBe(0);
    for (const args of [["show", "vm-1"], ["list"], ["show"]]) {
      const r = await probed(...args, "--json", "--home", home);
      expect(r.code, r.stderr).toBe(0);
      expect(r.probe.scripts, args.join(" ")).toEqual([
        { filename: BUNDLE, cachedData: true, cachedDataRejected: false },
      ]);
      expect(r.probe.requested, args.join(" ")).not.toContain("yaml");
      // Nor a registry driver for show, which reads files only; list reads
      // the registry's index (SQLite here).
      if (args[0] === "show")
        expect(r.probe.requested, args.join(" ")).not.toContain("better-sqlite3");
      else expect(r.probe.requested, args.join(" ")).toContain("better-sqlite3");
      expect(r.probe.requested, args.join(" ")).not.toContain("pg");
      // The prompt library (and the menu) read keys through node:readline.
      expect(r.probe.builtins, args.join(" ")).not.toContain("NativeModule readline");
    }
    // Those that need them do load them: the probe sees both.
    const seed = await probed("seed", "vm-1", "--home", home);
    expect(seed.code, seed.stderr).toBe(0);
    expect(seed.probe.requested).toContain("yaml");
    // seed checks the VM's values against the registry.
    expect(seed.probe.requested).toContain("better-sqlite3");
    const menu = await probed("menu", "--home", home);
    expect(menu.code).toBe(2); // no terminal
    expect(menu.probe.builtins).toContain("NativeModule readline");
  });
});

describe("the built glint", () => {
  it("prints its help and version", async () => {
    const help = await run([], CLI, ["--help"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: glint /m);
    for (const cmd of ["create", "list", "show", "regen", "nuke", "run", "menu"])
      expect(help.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, "m"));
    const version = await run([], CLI, ["--version"]);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("still runs, without the code cache, when the bundle changed after the build", async () => {
    const copy = path.join(dir, "stale");
    await fs.cp(path.join(ROOT, "dist"), path.join(copy, "dist"), { recursive: true });
    await fs.cp(path.join(ROOT, "assets"), path.join(copy, "assets"), { recursive: true });
    await fs.copyFile(path.join(ROOT, "package.json"), path.join(copy, "package.json"));
    await fs.symlink(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
    // Same length (V8 only checks the length), different text.
    const bundle = path.join(copy, "dist", "cli", "glint.cjs");
    const code = await fs.readFile(bundle, "utf8");
    await fs.writeFile(
      bundle,
      code.replace("VM names (each becomes the hostname)", "VM NAMES (each becomes the hostname)"),
    );
    const out = path.join(dir, "stale-probe.json");
    const r = await run(
      ["--require", path.join(FIXTURES, "module-probe.cjs")],
      path.join(copy, "dist", "cli", "main.js"),
      ["create", "--help"],
      { GLINT_PROBE_OUT: out },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("VM NAMES (each becomes the hostname)");
    const probe = JSON.parse(await fs.readFile(out, "utf8")) as Probe;
    expect(probe.scripts).toEqual([{ filename: bundle, cachedData: false }]);
  });

  it("a copy of the package in another directory uses its own assets", async () => {
    // Lay out an installed package: dist/, assets/, package.json and
    // node_modules (for yaml, which is not bundled).
    const pkg = path.join(dir, "pkg");
    await fs.mkdir(pkg);
    await fs.cp(path.join(ROOT, "dist"), path.join(pkg, "dist"), { recursive: true });
    await fs.cp(path.join(ROOT, "assets"), path.join(pkg, "assets"), { recursive: true });
    await fs.copyFile(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
    await fs.symlink(path.join(ROOT, "node_modules"), path.join(pkg, "node_modules"));
    // Mark the copy's guest script so that the output shows which one was read.
    const script = path.join(pkg, "assets", "guest", "set_identifiers.sh");
    await fs.writeFile(
      script,
      (await fs.readFile(script, "utf8")).replace(
        /^#!\/bin\/sh\n/,
        "#!/bin/sh\n# copied-package-marker\n",
      ),
    );

    const pkgHome = path.join(dir, "pkg-home");
    const bin = path.join(pkg, "dist", "cli", "main.js");
    const glint = (...args: string[]) => run([], bin, [...args, "--home", pkgHome]);
    const created = await glint("create", "vm-1", "--json");
    expect(created.code, created.stderr).toBe(0);
    // The post-install script on the share came from the copy's assets...
    const written = await fs.readFile(
      path.join(pkgHome, "vm-1", "shared", "set_identifiers.sh"),
      "utf8",
    );
    expect(written).toContain("# copied-package-marker");
    const printed = await glint("script", "vm-1", "--stdout");
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toContain("# copied-package-marker");
    // ...and seed.iso too (its YAML checked by the lazily loaded yaml library).
    await expect(fs.stat(path.join(pkgHome, "vm-1", "seed.iso"))).resolves.toBeTruthy();
    const seed = await glint("seed", "vm-1", "--json");
    expect(seed.code, seed.stderr).toBe(0);

    const show = await glint("show", "vm-1", "--json");
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ schema_version: 1 });
    const list = await glint("list", "--json");
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: "vm-1", ok: true }]);
  });
});
