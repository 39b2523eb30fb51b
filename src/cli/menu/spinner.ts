/**
 * A tiny progress indicator. Animated (a frame timer rewriting one line) when
 * the stream is a TTY and colour is allowed; otherwise each message is written
 * once, on its own line.
 */

export interface Spinner {
  /** Replace the message (e.g. from an operation's `onProgress`). */
  update(text: string): void;
  /** Stop; clears the line, then writes `finalText` if given. */
  stop(finalText?: string): void;
}

export interface SpinnerStream {
  write(chunk: string): unknown;
}

export interface SpinnerOptions {
  stream?: SpinnerStream;
  /** Animate with a frame timer; otherwise print plain lines. */
  animate: boolean;
  intervalMs?: number;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const CLEAR_LINE = "\r\x1b[2K";

export function createSpinner(text: string, options: SpinnerOptions): Spinner {
  const stream = options.stream ?? process.stderr;
  let message = text;
  let stopped = false;

  if (!options.animate) {
    stream.write(`${message}\n`);
    return {
      update(next) {
        if (stopped || next === message) return;
        message = next;
        stream.write(`${message}\n`);
      },
      stop(finalText) {
        if (stopped) return;
        stopped = true;
        if (finalText) stream.write(`${finalText}\n`);
      },
    };
  }

  let frame = 0;
  const render = (): void => {
    stream.write(`${CLEAR_LINE}\x1b[33m${FRAMES[frame % FRAMES.length]}\x1b[39m ${message}`);
    frame++;
  };
  render();
  const timer = setInterval(render, options.intervalMs ?? 80);
  timer.unref?.();
  return {
    update(next) {
      if (stopped) return;
      message = next;
      render();
    },
    stop(finalText) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      stream.write(CLEAR_LINE);
      if (finalText) stream.write(`${finalText}\n`);
    },
  };
}

/** A `MenuDeps.spinner` factory writing to `stream`. */
export function spinnerFactory(options: SpinnerOptions): (text: string) => Spinner {
  return (text) => createSpinner(text, options);
}
