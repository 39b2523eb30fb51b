/**
 * A child process of the scale benchmark (src/bench/scale.ts), so that its
 * peak RSS is its own: `node dist/bench/scale-child.js HOME COUNT` creates
 * COUNT identity-only VMs (vm-0 …) through the batched path and prints the
 * milliseconds it took as JSON.
 */
import { UuidManager } from "../manager.js";

async function main(home: string, count: number): Promise<void> {
  const m = new UuidManager({ home, steps: {} });
  const t0 = process.hrtime.bigint();
  const width = String(count - 1).length;
  const names = Array.from({ length: count }, (_, i) => `vm-${String(i).padStart(width, "0")}`);
  // As `glint create` does: 1,000 at a time through the batcher.
  for (let i = 0; i < names.length; i += 1000)
    await Promise.all(names.slice(i, i + 1000).map((vm) => m.createBatched(vm)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await m.close();
  process.stdout.write(`${JSON.stringify({ ms })}\n`);
}

main(process.argv[2] ?? "", Number(process.argv[3])).catch((error: unknown) => {
  process.stderr.write(`scale-child: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
