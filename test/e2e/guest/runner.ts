/**
 * Booting the tiny guest and collecting what it printed: it writes
 * `GLINT:key=value` marker lines on ttyS0 and powers off. QEMU runs directly
 * or through any wrapper, such as `glint run`. Everything is spawned with
 * argv arrays; no shell strings.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI } from "../../support/paths.js";
import type { TinyGuest } from "./fixture.js";

/**
 * QEMU arguments for direct kernel boot of the tiny guest with the serial
 * console on stdio. Memory, machine, accelerator etc. are left to the caller.
 */
export function guestKernelArgs(kernel: string, initrd: string, extraAppend = ""): string[] {
  const append = ["console=ttyS0", "panic=-1", "quiet", extraAppend.trim()]
    .filter((s) => s.length > 0)
    .join(" ");
  return ["-kernel", kernel, "-initrd", initrd, "-append", append, "-nographic", "-no-reboot"];
}

export type Markers = Record<string, string[]>;

/**
 * Parse `GLINT:key=value` / `GLINT:key` lines (anywhere in a line, so console
 * escape sequences in front do not matter). Values keep `=` after the first.
 */
export function parseMarkers(output: string): Markers {
  const markers: Markers = {};
  for (const raw of output.split("\n")) {
    const line = raw.replace(/\r/g, "");
    const at = line.indexOf("GLINT:");
    if (at < 0) continue;
    const body = line.slice(at + "GLINT:".length);
    const eq = body.indexOf("=");
    const key = eq < 0 ? body.trim() : body.slice(0, eq);
    const value = eq < 0 ? "" : body.slice(eq + 1);
    if (!/^[A-Za-z0-9_.:/-]+$/.test(key)) continue;
    const list = markers[key] ?? [];
    list.push(value);
    markers[key] = list;
  }
  return markers;
}

/** The single value of marker `key`; throws if it is absent or repeated. */
export function markerValue(markers: Markers, key: string): string {
  const values = markers[key];
  if (values === undefined || values.length !== 1 || values[0] === undefined) {
    throw new Error(`expected exactly one GLINT:${key}, got ${JSON.stringify(values ?? [])}`);
  }
  return values[0];
}

export interface RunResult {
  argv: string[];
  /** stdout (the guest's serial console when run with -nographic). */
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved in arrival order. */
  output: string;
  markers: Markers;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  /** The process printed GLINT:done but did not exit within `doneGraceMs` and was killed. */
  killedAfterDone: boolean;
}

/** Thrown on timeout, spawn failure, or (from bootGuest) a boot that did not finish. */
export class GuestRunError extends Error {
  readonly output: string;
  readonly result: RunResult | undefined;
  constructor(message: string, output: string, result?: RunResult) {
    const tail = output.length > 8000 ? `...${output.slice(-8000)}` : output;
    super(`${message}\n--- captured output ---\n${tail}`);
    this.name = "GuestRunError";
    this.output = output;
    this.result = result;
  }
}

export interface RunOptions {
  cwd?: string;
  /** Called with each stdout/stderr chunk (e.g. for live debugging). */
  onOutput?: (chunk: string) => void;
  /**
   * Once a `GLINT:done` line was printed, SIGKILL the process if it is still
   * running after this many ms (the guest's poweroff failed); the result then
   * has `killedAfterDone: true`. Default: wait for exit until `timeoutMs`.
   */
  doneGraceMs?: number;
}

/**
 * Spawn `argv` (no shell), capture stdout/stderr, parse markers. Resolves when
 * the process exits, whatever its exit code; rejects with {@link GuestRunError}
 * if it cannot be started or runs longer than `timeoutMs` (it is SIGKILLed).
 */
export function runAndCollect(
  argv: readonly string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
  options: RunOptions = {},
): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) return Promise.reject(new Error("runAndCollect: empty argv"));
  const started = performance.now();
  return new Promise<RunResult>((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    let output = "";
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (err) {
      reject(new GuestRunError(`cannot start ${command}: ${String(err)}`, ""));
      return;
    }
    let timedOut = false;
    let killedAfterDone = false;
    let doneTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      output += chunk;
      options.onOutput?.(chunk);
      const grace = options.doneGraceMs;
      if (
        grace !== undefined &&
        doneTimer === undefined &&
        /GLINT:done\r?\n/.test(stdout.slice(-(chunk.length + 16)))
      ) {
        doneTimer = setTimeout(() => {
          killedAfterDone = true;
          child.kill("SIGKILL");
        }, grace);
      }
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      output += chunk;
      options.onOutput?.(chunk);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      clearTimeout(doneTimer);
      reject(new GuestRunError(`cannot start ${command}: ${err.message}`, output));
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(doneTimer);
      const result: RunResult = {
        argv: [...argv],
        stdout,
        stderr,
        output,
        markers: parseMarkers(stdout),
        exitCode,
        signal,
        durationMs: Math.round(performance.now() - started),
        killedAfterDone,
      };
      if (timedOut) {
        reject(new GuestRunError(`${command} timed out after ${timeoutMs} ms`, output, result));
      } else {
        resolve(result);
      }
    });
  });
}

export interface BootGuestOptions {
  /** QEMU arguments (appended to `command`). */
  qemuArgs: readonly string[];
  timeoutMs?: number;
  /** Command prefix, e.g. ["node", "dist/cli/main.js", "run", "vm", "--"]; default qemu-system-x86_64. */
  command?: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Reject unless the guest printed GLINT:done and the process exited 0 (default true). */
  requireDone?: boolean;
  /** See {@link RunOptions.doneGraceMs}; default 20 s. */
  doneGraceMs?: number;
  onOutput?: (chunk: string) => void;
}

/** Boot the tiny guest and return its output and markers. */
export async function bootGuest(opts: BootGuestOptions): Promise<RunResult> {
  const argv = [...(opts.command ?? ["qemu-system-x86_64"]), ...opts.qemuArgs];
  const result = await runAndCollect(argv, opts.env, opts.timeoutMs ?? 120_000, {
    cwd: opts.cwd,
    onOutput: opts.onOutput,
    doneGraceMs: opts.doneGraceMs ?? 20_000,
  });
  if (opts.requireDone ?? true) {
    if (result.markers.done === undefined) {
      throw new GuestRunError(
        `guest did not print GLINT:done (exit ${result.exitCode ?? result.signal})`,
        result.output,
        result,
      );
    }
    if (result.killedAfterDone) {
      throw new GuestRunError(
        "guest printed GLINT:done but QEMU did not exit: poweroff failed (ACPI unusable?)",
        result.output,
        result,
      );
    }
    if (result.exitCode !== 0) {
      throw new GuestRunError(`${argv[0]} exited ${result.exitCode}`, result.output, result);
    }
  }
  return result;
}

/** Boot the tiny guest with `glint run <vm>` under TCG and return what the guest printed. */
export async function bootWithGlint(
  home: string,
  vm: string,
  guest: TinyGuest,
  append = "",
  extra: readonly string[] = [],
): Promise<RunResult> {
  return bootGuest({
    command: [process.execPath, CLI, "run", vm, "--home", home, "--"],
    qemuArgs: [...guestKernelArgs(guest.kernel, guest.initrd, append), "-accel", "tcg", ...extra],
    timeoutMs: 180_000,
  });
}

/**
 * Stop a `glint run` started with `detached: true` and everything it started
 * (QEMU, swtpm): SIGTERM to its process group, SIGKILL after 5 s, then wait.
 */
export async function stopGroup(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, s);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const killer = setTimeout(() => signal("SIGKILL"), 5000);
  await exited;
  clearTimeout(killer);
  signal("SIGKILL"); // QEMU or swtpm left behind by the group leader
}

/**
 * `glint run <vm>` with no display or monitor under TCG, the serial console
 * going to `serial` (a QEMU chardev: "none", "file:PATH"), in its own
 * process group.
 */
export function startGlintRun(
  home: string,
  vm: string,
  extra: readonly string[] = [],
  serial = "none",
): { exited: Promise<number | null>; stderr: () => string; stop: () => Promise<void> } {
  const child = spawn(
    process.execPath,
    [
      CLI,
      "run",
      vm,
      "--home",
      home,
      "--",
      ...extra,
      "-display",
      "none",
      "-monitor",
      "none",
      "-serial",
      serial,
      "-accel",
      "tcg",
    ],
    { stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  let stderr = "";
  child.stderr?.on("data", (c) => {
    stderr += String(c);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { exited, stderr: () => stderr, stop: () => stopGroup(child, exited) };
}
