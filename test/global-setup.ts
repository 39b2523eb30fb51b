/**
 * Builds dist/ once before any test runs, with the same script as
 * `npm run build` (tsc, then the esbuild bundle of the CLI): the CLI tests
 * spawn `node dist/cli/main.js` and the child-process helpers import
 * dist/*.js, so a stale or missing build would test old code. Fails loudly if
 * the build fails or if dist/ is still older than src/ afterwards.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Every .ts file under `dir` with its mtime. */
async function sources(dir: string): Promise<{ file: string; mtimeMs: number }[]> {
  const out: { file: string; mtimeMs: number }[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts") || entry.name.endsWith(".d.ts")) continue;
    const file = path.join(entry.parentPath, entry.name);
    const st = await fs.stat(file).catch(() => undefined);
    if (st) out.push({ file, mtimeMs: st.mtimeMs });
  }
  return out;
}

export async function setup(): Promise<void> {
  const started = Date.now();
  try {
    await run(process.execPath, [path.join(root, "scripts", "build.mjs")], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `global setup: \`node scripts/build.mjs\` (npm run build) failed, so dist/ cannot be trusted:\n${e.stdout ?? ""}${e.stderr ?? ""}${e.message}`,
    );
  }
  const cli = path.join(root, "dist", "cli", "main.js");
  const built = await fs.stat(cli).catch(() => undefined);
  if (!built) throw new Error(`global setup: ${cli} is missing after the build`);
  // Every source that existed before the build started must now have a fresh
  // .js; src/cli/ is built into two files only: the bin (dist/cli/main.js,
  // from bin.ts) and the bundle of the CLI (dist/cli/glint.cjs).
  // (Files saved while the build ran, e.g. by someone editing concurrently, only warn.)
  const stale: string[] = [];
  for (const src of await sources(path.join(root, "src"))) {
    let rel = path.relative(path.join(root, "src"), src.file).replace(/\.ts$/, ".js");
    if (rel.startsWith(`cli${path.sep}`))
      rel = rel === path.join("cli", "bin.js") ? "cli/main.js" : "cli/glint.cjs";
    const js = await fs.stat(path.join(root, "dist", rel)).catch(() => undefined);
    if (src.mtimeMs >= started) {
      console.warn(
        `global setup: ${src.file} changed while the build ran; dist/${rel} may be stale`,
      );
    } else if (!js || js.mtimeMs < started - 1000) {
      stale.push(`dist/${rel}`);
    }
  }
  if (stale.length > 0) {
    throw new Error(
      `global setup: missing or stale after the build: ${[...new Set(stale)].join(", ")}`,
    );
  }
}
