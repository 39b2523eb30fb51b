/**
 * The progress bar of bulk operations (cli-progress), on stderr, only when
 * stdout and stderr are both terminals and the output is not `--json`. The
 * per-VM result lines still go to stdout: the bar's line is cleared before
 * each one and redrawn under it.
 */
/** Where a bar may be drawn: a terminal stream (a real one, or a test's). */
export interface BarStream extends NodeJS.WritableStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface BulkProgress {
  /** Print a result line (through `print`) without tearing the bar. */
  line(print: () => void): void;
  /** One more VM done (`failed`: and it failed). */
  tick(failed: boolean): void;
  /** Remove the bar (the result lines stay). */
  stop(): void;
}

const NONE: BulkProgress = {
  line: (print) => print(),
  tick: () => {},
  stop: () => {},
};

/**
 * A bar for `total` VMs on `stream`, or one that draws nothing: with
 * `--json`, for a single VM, or when `stream` is not a terminal. The bar
 * library (and the readline it pulls in) is loaded only when a bar is drawn.
 */
export async function bulkProgress(
  total: number,
  stream: BarStream | undefined,
  json: boolean | undefined,
): Promise<BulkProgress> {
  if (json || total < 2 || stream === undefined || stream.isTTY !== true) return NONE;
  const { default: cliProgress } = await import("cli-progress");
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: "[{bar}] {value}/{total} VMs, {failed} failed",
      barsize: 30,
      hideCursor: true,
      clearOnComplete: true,
      forceRedraw: true,
      gracefulExit: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let failed = 0;
  bar.start(total, 0, { failed });
  return {
    line(print) {
      stream.write("\r\x1b[2K");
      print();
      bar.render();
    },
    tick(f) {
      if (f) failed++;
      bar.increment(1, { failed });
    },
    stop: () => bar.stop(),
  };
}
