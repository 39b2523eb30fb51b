#!/usr/bin/env node
/**
 * `npm run build` (also run once by the tests' global setup):
 *
 * 1. `tsc -p tsconfig.json` compiles every module of src/ into dist/: the
 *    library (`dist/index.js` and its types), the benchmarks, and the modules
 *    the tests' child processes import.
 * 2. esbuild bundles the CLI, src/cli/main.ts, into `dist/cli/main.js` (the
 *    `glint` bin, replacing tsc's file): one minified module with its
 *    dependencies instead of ~100 files to resolve, read and compile at every
 *    start. Code that only some commands need and that is loaded with
 *    `import()` (the interactive menu and its prompt library) goes into
 *    `dist/cli/chunk-*.js` files beside it, read only when used.
 *
 * dist/cli-bundle.json is esbuild's metafile: which sources went into which
 * output file. Every bundled file sits in dist/cli/, at the same depth as tsc's
 * dist/guest/render.js, so `new URL("../../templates/", import.meta.url)`
 * finds the package's templates/ from both; the build checks that.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const cliDir = path.join(dist, "cli");
/** Outputs of esbuild other than main.js; removed before each build so none goes stale. */
const CHUNK_RE = /^chunk-.*\.js(\.map)?$/;

function removeOldChunks() {
  let names = [];
  try {
    names = readdirSync(cliDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (CHUNK_RE.test(name)) rmSync(path.join(cliDir, name), { force: true });
  }
}

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
    entryPoints: { main: "src/cli/main.ts" },
    outdir: cliDir,
    chunkNames: "chunk-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20.12",
    minify: true,
    // Error classes and the CLI's messages rely on no function name, but
    // stack traces (GLINT_DEBUG=1) stay readable.
    keepNames: true,
    sourcemap: "linked",
    // CommonJS dependencies (commander, the prompt library) call require()
    // for Node's built-in modules; an ES module has no `require` of its own.
    banner: {
      js: 'import { createRequire as __glintCreateRequire } from "node:module"; const require = __glintCreateRequire(import.meta.url);',
    },
    metafile: true,
    logLevel: "warning",
  });
  // What went into which file: test/cli/bundle.test.ts checks that the code
  // loaded at start leaves out what only some commands need.
  writeFileSync(path.join(dist, "cli-bundle.json"), JSON.stringify(result.metafile));
  // ../../templates/ must resolve from whichever output holds render.ts.
  for (const file of Object.keys(result.metafile.outputs)) {
    if (!file.endsWith(".js")) continue;
    const dir = path.resolve(root, path.dirname(file));
    if (dir !== cliDir) throw new Error(`build: bundle output ${file} is not in ${cliDir}`);
    const name = path.basename(file);
    if (name !== "main.js" && !CHUNK_RE.test(name)) {
      throw new Error(`build: bundle output ${file} would not be removed by the next build`);
    }
  }
}

try {
  removeOldChunks();
  runTsc();
  await bundleCli();
} catch (error) {
  // tsc already printed its diagnostics; esbuild printed its own.
  process.stderr.write(`build failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
