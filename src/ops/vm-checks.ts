/**
 * What `glint list` checks of each VM before it trusts the registry's index
 * entry: its identifiers.json's mtime and size (the entry's stamp) and
 * whether an operation's journal is there. That is two system calls per VM,
 * about half a second at 100,000 VMs, so a large home's checks run in a
 * worker thread, a window at a time, while the main thread reads the index
 * and writes the output; a small home's run in line.
 */
import * as nodeFs from "node:fs";
import { Worker } from "node:worker_threads";
import { stampOf } from "../registry/vm-index.js";
import { VM_FILES } from "../vm/layout.js";

/** The checks of one window of VM names, by position in the window. */
export interface VmChecks {
  /** identifiers.json's mtime in ms, or -1 when it is missing or unreadable. */
  readonly mtimes: Float64Array;
  /** identifiers.json's size, or -1 likewise. */
  readonly sizes: Float64Array;
  /** 1 where the VM's journal is there. */
  readonly journals: Uint8Array;
  /** Where the checks ran. */
  readonly by: "worker" | "inline";
}

/** The stamp (see IndexEntry.stamp) of the `i`th VM of a window's checks. */
export function stampAt(c: VmChecks, i: number): string {
  const size = c.sizes[i] ?? -1;
  return stampOf(size < 0 ? undefined : { mtimeMs: c.mtimes[i] ?? 0, size });
}

/** Homes with more VMs than this check them in a worker thread. */
export const WORKER_ABOVE = 4096;

/**
 * Check `names` of `home` (directory names, already validated). It uses
 * nothing but its arguments: the worker runs its source text.
 */
function checkVms(
  fs: Pick<typeof nodeFs, "statSync" | "existsSync">,
  home: string,
  names: readonly string[],
  identifiers: string,
  journal: string,
): VmChecks {
  const mtimes = new Float64Array(names.length);
  const sizes = new Float64Array(names.length);
  const journals = new Uint8Array(names.length);
  for (let i = 0; i < names.length; i++) {
    const dir = `${home}/${names[i]}`;
    let st: { mtimeMs: number; size: number } | undefined;
    try {
      st = fs.statSync(`${dir}/${identifiers}`, { throwIfNoEntry: false });
    } catch {
      st = undefined; // unreadable: the VM is read from its files, which say why
    }
    mtimes[i] = st ? st.mtimeMs : -1;
    sizes[i] = st ? st.size : -1;
    journals[i] = fs.existsSync(`${dir}/${journal}`) ? 1 : 0;
  }
  return { mtimes, sizes, journals, by: "inline" };
}

const WORKER_SOURCE = `
const fs = require("node:fs");
const { parentPort, workerData } = require("node:worker_threads");
const checkVms = ${checkVms.toString()};
const { home, names, window, identifiers, journal } = workerData;
const claims = new Int32Array(workerData.claims);
const count = Math.ceil(names.length / window);
for (;;) {
  const k = Atomics.add(claims, 0, 1);
  if (k >= count) break;
  const c = checkVms(fs, home, names.slice(k * window, (k + 1) * window), identifiers, journal);
  parentPort.postMessage({ ...c, k, by: "worker" }, [c.mtimes.buffer, c.sizes.buffer, c.journals.buffer]);
}
`;

export interface VmChecksOptions {
  /** Homes with more VMs than this are checked in a worker thread. */
  readonly workerAbove?: number;
  /**
   * Whether the caller's thread checks the windows the worker has not
   * claimed yet when they are asked for (while it starts, about 0.1 s),
   * instead of waiting. Default true.
   */
  readonly mainHelps?: boolean;
}

/**
 * The checks of `names`, `window` names at a time, in order. Each window is
 * claimed, through a shared counter, by the worker or by this thread, and
 * checked by whichever claimed it. A worker that fails leaves the windows
 * it claimed but did not send to be checked in line.
 */
export async function* vmChecks(
  home: string,
  names: readonly string[],
  window: number,
  { workerAbove = WORKER_ABOVE, mainHelps = true }: VmChecksOptions = {},
): AsyncGenerator<VmChecks> {
  const inline = (k: number) =>
    checkVms(
      nodeFs,
      home,
      names.slice(k * window, (k + 1) * window),
      VM_FILES.identifiers,
      VM_FILES.journal,
    );
  const count = Math.ceil(names.length / window);
  if (names.length <= workerAbove) {
    for (let k = 0; k < count; k++) yield inline(k);
    return;
  }
  const claims = new Int32Array(new SharedArrayBuffer(4));
  const received = new Map<number, VmChecks>();
  let failed = false;
  let wake: (() => void) | undefined;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      home,
      names,
      window,
      identifiers: VM_FILES.identifiers,
      journal: VM_FILES.journal,
      claims: claims.buffer,
    },
  });
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  worker.on("message", (c: VmChecks & { k: number }) => {
    received.set(c.k, c);
    notify();
  });
  worker.on("error", () => {
    failed = true;
    notify();
  });
  worker.on("exit", () => {
    failed = true; // every window it sent is in `received` already
    notify();
  });
  try {
    for (let k = 0; k < count; k++) {
      // Claims only grow: either this thread claims window k now, or the worker has.
      if (mainHelps && Atomics.compareExchange(claims, 0, k, k + 1) === k) {
        yield inline(k);
        continue;
      }
      while (!received.has(k) && !failed)
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      const c = received.get(k);
      received.delete(k);
      yield c ?? inline(k);
    }
  } finally {
    await worker.terminate();
  }
}
