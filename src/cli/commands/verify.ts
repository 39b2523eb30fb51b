/**
 * `glint verify VM… | --all [--json]`: each VM's identity as its guest and
 * QEMU see it, against identifiers.json. Exit code 0 only when every
 * available value matches (and, with --all, no two VMs share a machine-id or
 * an SSH host key).
 */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import {
  type Check,
  type FleetVerification,
  type VerifyTarget,
  verifyVms,
} from "../../verify/index.js";
import type { CliEnv } from "../common.js";
import { formatTable } from "../format.js";

interface VerifyOptions {
  home?: string;
  json?: boolean;
  all?: boolean;
}

function seenText(c: Check): string {
  if (c.seen === null) return `- (${c.why ?? "unavailable"})`;
  return c.seen;
}

/** The text report: one table per VM, then the values VMs share. */
export function formatVerification(f: FleetVerification): string {
  const blocks: string[] = [];
  for (const r of f.results) {
    const rows: string[][] = [["", "field", "expected", "seen", "from"]];
    for (const c of r.checks) {
      const mark = c.status === "ok" ? "ok" : c.status === "mismatch" ? "MISMATCH" : "unavailable";
      rows.push([mark, c.field, c.expected, seenText(c), c.source]);
    }
    const counts = (s: Check["status"]) => r.checks.filter((c) => c.status === s).length;
    blocks.push(
      `${r.vm} (${r.state}): ${r.ok ? "ok" : "MISMATCH"} — ${counts("ok")} ok, ${counts("mismatch")} mismatch, ${counts("unavailable")} unavailable\n${formatTable(rows)}`,
    );
  }
  if (f.shared.length > 0) {
    blocks.push(
      [
        "values shared by several VMs inside their guests:",
        ...f.shared.map((s) => `  ${s.field} ${s.value}: ${s.vms.join(", ")}`),
      ].join("\n"),
    );
  }
  return blocks.join("\n\n");
}

export function addVerifyCommand(program: Command, deps: CliEnv): void {
  program
    .command("verify")
    .description(
      "check VMs against their identifiers.json: a running VM through QMP and the QEMU guest agent, a stopped one from its disk",
    )
    .argument("[vm...]", "VM names")
    .option("--all", "every VM, and report values that two VMs share inside their guests")
    .option("--home <dir>", "VM home directory (default: $GLINT_HOME or ./vms_linux)")
    .option("--json", "print JSON instead of text")
    .action(async (vms: string[], opts: VerifyOptions) => {
      if (opts.all && vms.length > 0) {
        throw new UsageError("give VM names or --all, not both", { reason: "verify-args" });
      }
      const m = deps.manager(opts.home);
      const names = opts.all ? await m.listVms() : vms;
      if (names.length === 0) {
        throw new UsageError(
          opts.all ? `no VMs in ${m.home}` : "name at least one VM, or use --all",
          { reason: "verify-args" },
        );
      }
      const targets: VerifyTarget[] = [];
      for (const name of names) {
        targets.push({
          paths: m.paths(name),
          ids: await m.getIdentifiers(name),
          config: await m.getConfig(name),
        });
      }
      const f = await verifyVms(targets);
      if (opts.json) {
        const out = f.results.map((r) => {
          const shared = f.shared
            .filter((s) => s.vms.includes(r.vm))
            .map((s) => ({
              field: s.field,
              value: s.value,
              with: s.vms.filter((v) => v !== r.vm),
            }));
          return {
            vm: r.vm,
            ok: r.ok && shared.length === 0,
            state: r.state,
            checks: r.checks,
            ...(opts.all ? { shared } : {}),
          };
        });
        deps.io.stdout(JSON.stringify(out, null, 2));
      } else deps.io.stdout(formatVerification(f));
      deps.setExitCode(f.ok ? 0 : 1);
    });
}
