/**
 * Critical sections: the stretch of an operation during which it changes
 * visible state (commit phase). A signal that arrives inside one is deferred
 * until the section ends, so that nothing is left half-committed; outside
 * one, a signal may end the process at once (the journal and the stale-temp
 * cleanup cover whatever was only prepared).
 */
let depth = 0;
const whenLeft: (() => void)[] = [];

/** Run `fn` as a critical section. */
export async function critical<T>(fn: () => Promise<T>): Promise<T> {
  depth++;
  try {
    return await fn();
  } finally {
    depth--;
    if (depth === 0) for (const cb of whenLeft.splice(0)) cb();
  }
}

/** Whether a critical section is running in this process. */
export function inCritical(): boolean {
  return depth > 0;
}

/** Call `cb` once no critical section runs (at once if none does). */
export function afterCritical(cb: () => void): void {
  if (depth === 0) cb();
  else whenLeft.push(cb);
}
