/**
 * `glint audit [VM] [--since T] [--json]` reads the home's audit log (see
 * src/audit/); `glint audit verify` checks its hash chain and exits 1 naming
 * the first bad seq.
 */
import type { Command } from "commander";
import type { AuditRecord } from "../../audit/index.js";
import { GlintError, UsageError } from "../../errors.js";
import { assertVmName } from "../../vm/layout.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";

const UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

/** `--since`: an ISO date/time, or an age such as 30m, 12h or 7d. */
export function parseSince(value: string, now = Date.now()): number {
  const age = /^([1-9][0-9]{0,6})([smhd])$/.exec(value);
  if (age) return now - Number(age[1]) * (UNIT_MS[age[2] ?? "s"] ?? 1e3);
  const t = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(t)) {
    throw new UsageError(
      `--since: '${value}' is neither a date/time (2026-12-01, 2026-12-01T10:00:00Z) nor an age (30m, 12h, 7d)`,
    );
  }
  return t;
}

function formatRecord(r: AuditRecord): string {
  const head = `${r.seq}  ${r.time}  ${r.user}@${r.host} (uid ${r.uid}, pid ${r.pid})  ${r.operation}${r.vm ? ` ${r.vm}` : ""}`;
  const lines = [head, `    command: ${r.command}`];
  const width = Math.max(0, ...Object.keys(r.changes).map((k) => k.length));
  for (const [field, c] of Object.entries(r.changes)) {
    lines.push(`    ${field.padEnd(width)}  ${String(c.old)} → ${String(c.new)}`);
  }
  return lines.join("\n");
}

export function addAuditCommand(program: Command, { io, manager, setExitCode }: CliEnv): void {
  const audit = common(program.command("audit"))
    .description("show the home's audit log (every state change), or `audit verify` its chain")
    .argument("[vm]", "only records of this VM")
    .option("--since <time>", "only records from TIME on: a date/time or an age (30m, 12h, 7d)")
    .action(async (vm: string | undefined, opts: CommonOptions & { since?: string }) => {
      if (vm !== undefined) assertVmName(vm);
      const since = opts.since === undefined ? undefined : parseSince(opts.since);
      const m = manager(opts.home);
      const records = (await m.audit.records()).filter(
        (r) =>
          (vm === undefined || r.vm === vm) && (since === undefined || Date.parse(r.time) >= since),
      );
      if (opts.json) {
        io.stdout(JSON.stringify(records, null, 2));
        return;
      }
      io.stdout(records.length ? records.map(formatRecord).join("\n") : "no audit records");
    });
  common(audit.command("verify"))
    .description("check the audit log's hash chain; exits 1 naming the first bad seq")
    .action(async (opts: CommonOptions) => {
      const m = manager(opts.home ?? audit.opts<CommonOptions>().home);
      const result = await m.audit.verify();
      const json = opts.json ?? audit.opts<CommonOptions>().json;
      if (json) {
        io.stdout(JSON.stringify(result, null, 2));
        if (!result.ok) setExitCode(1);
        return;
      }
      if (!result.ok) {
        throw new GlintError(
          `audit log fails verification at seq ${result.seq}: ${result.problem}`,
          { code: "invalid-file", details: { reason: "audit-chain" } },
        );
      }
      io.stdout(`audit log verified: ${result.records} records, last hash ${result.head}`);
    });
}
