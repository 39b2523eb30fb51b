// Child process for test/vm/lock.test.ts: increments a shared counter file
// `iterations` times, each time inside the lock (read, pause, write), and
// logs "enter"/"exit" lines so the parent can check that no two critical
// sections overlapped. Usage: node lock-child.mjs <lock> <counter> <log> <iterations>
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { acquireLock } from "../../dist/vm/lock.js";

const [lockFile, counterFile, logFile, iterations] = process.argv.slice(2);
for (let i = 0; i < Number(iterations); i++) {
  const lock = await acquireLock(lockFile, { purpose: `child ${process.pid}`, waitMs: 50_000 });
  appendFileSync(logFile, `enter ${process.pid}\n`);
  const n = Number(readFileSync(counterFile, "utf8"));
  await sleep(1 + Math.floor(Math.random() * 3));
  writeFileSync(counterFile, String(n + 1));
  appendFileSync(logFile, `exit ${process.pid}\n`);
  await lock.release();
}
