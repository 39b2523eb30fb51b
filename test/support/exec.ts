/**
 * The one process runner of the tests: spawn a program with an argv array
 * (never a shell string), optionally feed it stdin, and collect its exit
 * status and output. A non-zero exit is a result, not an error.
 */
import { spawn } from "node:child_process";

export interface RunResult {
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The whole environment of the child (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** SIGKILL the process and reject after this many ms (default: no limit). */
  timeoutMs?: number;
}

/** Run `file args…`; rejects only if it cannot start or runs past `timeoutMs`. */
export function run(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, options.timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    if (options.input !== undefined) {
      child.stdin?.on("error", () => undefined); // the child may exit without reading
      child.stdin?.end(options.input);
    }
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${file} ${args.join(" ")} timed out after ${options.timeoutMs} ms`));
      } else {
        resolve({ code, signal, stdout, stderr });
      }
    });
  });
}

/** Like {@link run} but throws unless the exit code is 0; resolves with stdout. */
export async function runOk(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const r = await run(file, args, options);
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(" ")} exited ${r.code ?? r.signal}: ${r.stderr}`);
  }
  return r.stdout;
}
