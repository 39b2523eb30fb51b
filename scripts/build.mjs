#!/usr/bin/env node
/**
 * `npm run build` (also run once by the tests' global setup):
 *
 * 1. `tsc -p tsconfig.json` compiles every module of src/ into dist/: the
 *    library (`dist/index.js` and its types), the benchmarks, and the modules
 *    the tests' child processes import.
 * 2. esbuild bundles the CLI (src/cli/main.ts and everything it imports, the
 *    npm dependencies too) into one CommonJS script, `dist/cli/glint.cjs`,
 *    instead of ~100 modules to resolve, read and compile at every start.
 *    Code that only some commands need (the menu and its prompt library, the
 *    yaml library) is evaluated on first use only.
 * 3. `dist/cli/main.js`, the `glint` bin, is the small loader compiled from
 *    src/cli/bin.ts: it runs the bundle with V8's code cache. It is CommonJS
 *    too (dist/cli/package.json says so): node starts a CommonJS script
 *    faster than an ES module. tsc's ES-module output in dist/cli/ is
 *    removed, since nothing runs it any more (so build with this script:
 *    tsc alone would write ES modules where package.json says CommonJS).
 * 4. The loader runs `glint list` once, on a home with one VM, to write that
 *    cache, `dist/cli/glint.cjs.cache`.
 *
 * The bundle sits in dist/cli/, at the same depth as tsc's
 * dist/guest/script.js, so `new URL("../../assets/…", import.meta.url)`
 * finds the package's assets/ from both. dist/cli-bundle.json is esbuild's
 * metafile (which sources went into the bundle; test/cli/bundle.test.ts reads
 * it).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const cliDir = path.join(dist, "cli");
const BUNDLE = path.join(cliDir, "glint.cjs");
const CACHE = `${BUNDLE}.cache`;
const BIN = path.join(cliDir, "main.js");
/** For code that reads import.meta.url: a CommonJS script's own URL. */
const IMPORT_META_URL = {
  define: { "import.meta.url": "__glintImportMetaUrl" },
  banner: { js: 'var __glintImportMetaUrl=require("node:url").pathToFileURL(__filename).href;' },
};

function runTsc() {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.json")], {
    cwd: root,
    stdio: "inherit",
  });
}

async function bundleCli() {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ["src/cli/main.ts"],
    outfile: BUNDLE,
    // Registry drivers: better-sqlite3 is a native module; pg is loaded only
    // by commands that use a PostgreSQL registry (both through require()).
    external: ["better-sqlite3", "pg", "pg-native"],
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20.12",
    minify: true,
    // Stack traces (GLINT_DEBUG=1) keep function and class names.
    keepNames: true,
    sourcemap: "linked",
    // script.ts finds assets/ from import.meta.url.
    ...IMPORT_META_URL,
    metafile: true,
    write: false,
    logLevel: "warning",
  });
  mkdirSync(cliDir, { recursive: true });
  for (const file of result.outputFiles) {
    let text = file.text;
    // The loader wraps the bundle in a function, where a #! line is a syntax
    // error; a comment keeps the line numbers of the source map.
    if (file.path === BUNDLE) text = text.replace(/^#!/, "//");
    writeFileSync(file.path, text);
  }
  writeFileSync(path.join(dist, "cli-bundle.json"), JSON.stringify(result.metafile));
}

/**
 * A home with one VM (identity only: no host tool needed), so that the run
 * that writes the code cache reads, checks and prints a VM as `glint show`
 * and `glint list` do. Without it the cache just covers less.
 */
async function sampleHome(home) {
  try {
    const { UuidManager } = await import(pathToFileURL(path.join(dist, "index.js")).href);
    await new UuidManager({ home, steps: {} }).generateFreshIdentifiers("sample");
  } catch (error) {
    process.stderr.write(`build: warning: no sample VM for the code cache: ${error}\n`);
  }
}

async function buildLoader() {
  await build({
    absWorkingDir: root,
    entryPoints: ["src/cli/bin.ts"],
    outfile: BIN,
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20.12",
    ...IMPORT_META_URL,
    logLevel: "warning",
  });
  writeFileSync(path.join(cliDir, "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);
}

async function writeCodeCache() {
  const home = mkdtempSync(path.join(os.tmpdir(), "glint-build-"));
  const tmp = `${CACHE}.tmp`;
  try {
    await sampleHome(home);
    execFileSync(process.execPath, [BIN, "list", "--json", "--home", home], {
      env: { ...process.env, GLINT_CODE_CACHE_OUT: tmp },
      stdio: ["ignore", "ignore", "inherit"],
    });
    renameSync(tmp, CACHE);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(home, { recursive: true, force: true });
  }
}

try {
  runTsc();
  rmSync(cliDir, { recursive: true, force: true });
  await bundleCli();
  await buildLoader();
  await writeCodeCache();
} catch (error) {
  // tsc and esbuild already printed their diagnostics.
  process.stderr.write(`build failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
