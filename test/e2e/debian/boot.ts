/**
 * Boot a Debian guest VM through `glint run` under TCG, with its serial
 * console in a file, and read back what the guest reported.
 */
import { promises as fs } from "node:fs";
import { startGlintRun } from "../guest/runner.js";
import { type GuestReport, parseReports } from "./report.js";

/** One boot of a Debian guest: 25 minutes at most (TCG on a busy 2-core host; two boots when cloud-init reboots). */
const BOOT_LIMIT_MS = 25 * 60_000;

/** The SMBIOS credential that keeps the guest up after its report (see guest/glint-report). */
export const STAY_UP = ["-smbios", "type=11,value=io.systemd.credential:glinttest.stay-up=1"];

export interface DebianBoot {
  code: number | null;
  /** The last complete report (after the reboot cloud-init may have asked for). */
  report: GuestReport;
  reports: GuestReport[];
  serial: string;
  seconds: number;
}

export interface RunningDebian {
  /** Resolves when the guest has reported (it may stay up: see STAY_UP). */
  reported: () => Promise<GuestReport>;
  /**
   * Resolves when `glint run` has exited (the guest powered off), at most
   * the boot limit after the start, or `afterNowMs` from now when given (a
   * guest asked to power off after its report gets that long to do so).
   */
  finished: (afterNowMs?: number) => Promise<DebianBoot>;
  /** SIGTERM to `glint run` and everything it started. */
  kill: () => Promise<void>;
}

/** `glint run <vm> -- … -display none -serial file:<log> -accel tcg`, in its own process group. */
export function startDebian(
  home: string,
  vm: string,
  serialLog: string,
  extra: readonly string[] = [],
): RunningDebian {
  const started = Date.now();
  const glintRun = startGlintRun(home, vm, extra, `file:${serialLog}`);
  let exitCode: number | null | undefined;
  const exited = glintRun.exited.then((code) => {
    exitCode = code;
    return code;
  });
  const stderr = glintRun.stderr;
  const readLog = () => fs.readFile(serialLog, "utf8").catch(() => "");
  const failure = async (why: string) => {
    const serial = await readLog();
    return new Error(
      `${vm} did not report (${why}): ${stderr()}\n--- serial tail ---\n${serial.split("\n").slice(-60).join("\n")}`,
    );
  };
  const finished = async (afterNowMs?: number): Promise<DebianBoot> => {
    let timer: NodeJS.Timeout | undefined;
    const limitMs = afterNowMs ?? BOOT_LIMIT_MS - (Date.now() - started);
    const limit = new Promise<"limit">((resolve) => {
      timer = setTimeout(() => resolve("limit"), limitMs);
    });
    const outcome = await Promise.race([exited, limit]);
    clearTimeout(timer);
    if (outcome === "limit") {
      await glintRun.stop();
      throw await failure(
        afterNowMs === undefined ? "boot limit reached" : "power-off limit reached",
      );
    }
    const serial = await readLog();
    const reports = parseReports(serial);
    const report = reports.at(-1);
    if (report === undefined) throw await failure(`glint run exited ${String(outcome)}`);
    return {
      code: outcome,
      report,
      reports,
      serial,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  };
  const reported = async (): Promise<GuestReport> => {
    while (Date.now() - started < BOOT_LIMIT_MS) {
      const report = parseReports(await readLog()).at(-1);
      if (report !== undefined) return report;
      if (exitCode !== undefined) throw await failure(`glint run exited ${String(exitCode)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await glintRun.stop();
    throw await failure("boot limit reached");
  };
  return { reported, finished, kill: () => glintRun.stop() };
}

/** Boot until the guest powers itself off after its report. */
export async function bootDebian(
  home: string,
  vm: string,
  serialLog: string,
  extra: readonly string[] = [],
): Promise<DebianBoot> {
  await fs.rm(serialLog, { force: true });
  return startDebian(home, vm, serialLog, extra).finished();
}
