/**
 * Boot a Debian guest VM through `glint run` under TCG, with its serial
 * console in a file, and read back what the guest reported.
 */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import { CLI, stopGroup } from "../helpers.js";
import { type GuestReport, parseReports } from "./report.js";

/** One boot of a Debian guest: 15 minutes at most (two boots under TCG when cloud-init reboots). */
const BOOT_LIMIT_MS = 15 * 60_000;

export interface DebianBoot {
  code: number | null;
  /** The last complete report (after the reboot cloud-init may have asked for). */
  report: GuestReport;
  reports: GuestReport[];
  serial: string;
  seconds: number;
}

/**
 * `glint run <vm> -- -display none -serial file:<log> -accel tcg …` until the
 * guest powers itself off after its report. Throws with the log's tail when
 * the guest did not report.
 */
export async function bootDebian(
  home: string,
  vm: string,
  serialLog: string,
  extra: readonly string[] = [],
): Promise<DebianBoot> {
  await fs.rm(serialLog, { force: true });
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [
      CLI,
      "run",
      vm,
      "--home",
      home,
      "--",
      "-display",
      "none",
      "-monitor",
      "none",
      "-serial",
      `file:${serialLog}`,
      "-accel",
      "tcg",
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  let stderr = "";
  child.stderr?.on("data", (c) => {
    stderr += String(c);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<"limit">((resolve) => {
    timer = setTimeout(() => resolve("limit"), BOOT_LIMIT_MS);
  });
  const outcome = await Promise.race([exited, limit]);
  clearTimeout(timer);
  if (outcome === "limit") await stopGroup(child, exited);
  const serial = await fs.readFile(serialLog, "utf8").catch(() => "");
  const reports = parseReports(serial);
  const report = reports.at(-1);
  if (outcome === "limit" || report === undefined) {
    throw new Error(
      `${vm} did not report (${outcome === "limit" ? "boot limit reached" : `glint run exited ${String(outcome)}`}): ${stderr}\n--- serial tail ---\n${serial.split("\n").slice(-60).join("\n")}`,
    );
  }
  return {
    code: outcome,
    report,
    reports,
    serial,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}
