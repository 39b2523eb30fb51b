#!/usr/bin/env node
/**
 * The `glint` bin as built: `npm run build` compiles this file alone into
 * dist/cli/main.js (CommonJS, which node starts faster than an ES module),
 * next to dist/cli/glint.cjs, the whole CLI (src/cli/main.ts and its
 * dependencies) bundled into one script by esbuild.
 *
 * It runs the bundle the way node runs a CommonJS module, but with V8's code
 * cache: dist/cli/glint.cjs.cache holds the bytecode V8 compiled for the
 * bundle during the build, so a start skips most parsing and compiling. The
 * cache file begins with the SHA-256 of the bundle it belongs to; V8 itself
 * rejects a cache from another V8 version or with other flags. Without a
 * usable cache the bundle is simply compiled.
 *
 * With GLINT_CODE_CACHE_OUT=FILE (set by the build only), it writes the code
 * cache to FILE when the process exits.
 *
 * Nothing from src/ is imported here: this file must stay small.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const bundle = fileURLToPath(new URL("./glint.cjs", import.meta.url));
const cacheFile = `${bundle}.cache`;
const HASH_BYTES = 32;

const source = readFileSync(bundle, "utf8");
const hash = createHash("sha256").update(source).digest();

/** The cache for exactly this bundle, or undefined. */
function cachedData(): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  return data.length > HASH_BYTES && data.subarray(0, HASH_BYTES).equals(hash)
    ? data.subarray(HASH_BYTES)
    : undefined;
}

// The same wrapper as node's CommonJS loader, on the bundle's first line so
// that stack traces keep the bundle's line numbers.
const script = new vm.Script(
  `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
  { filename: bundle, cachedData: cachedData() },
);

const out = process.env.GLINT_CODE_CACHE_OUT;
if (out) {
  // After the run, so that the cache holds the functions the command compiled.
  process.once("exit", () => {
    writeFileSync(out, Buffer.concat([hash, script.createCachedData()]));
  });
}

const module = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void).call(
  module.exports,
  module.exports,
  createRequire(bundle),
  module,
  bundle,
  path.dirname(bundle),
);
