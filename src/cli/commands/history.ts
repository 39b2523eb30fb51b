/**
 * `glint history VM`: a VM's past identities, oldest first, each with what
 * the next generation changed (field: old → new). The last archived entry is
 * compared with the VM's current identity.
 */
import type { Command } from "commander";
import {
  EXTRA_MACS,
  extraMacsOf,
  IDENTIFIER_FIELDS,
  identifiersToDict,
  type SystemIdentifiers,
} from "../../identity/model.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";

interface Change {
  field: string;
  old: string;
  new: string;
}

/** The identifier fields that differ between two identities. */
function changes(before: SystemIdentifiers, after: SystemIdentifiers | undefined): Change[] {
  if (after === undefined) return [];
  const out: Change[] = IDENTIFIER_FIELDS.filter((f) => before[f] !== after[f]).map((f) => ({
    field: f,
    old: String(before[f]),
    new: String(after[f]),
  }));
  const [a, b] = [extraMacsOf(before).join(" "), extraMacsOf(after).join(" ")];
  if (a !== b) out.push({ field: EXTRA_MACS, old: a || "none", new: b || "none" });
  return out;
}

export function addHistoryCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("history"))
    .description("list a VM's past identities, oldest first, with what each new generation changed")
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const m = manager(opts.home);
      const entries = await m.history(vm);
      const current = await m.getIdentifiers(vm).catch(() => undefined);
      const readable = (i: number): SystemIdentifiers | undefined => {
        const e = i < entries.length ? entries[i]?.identifiers : current;
        return e === undefined || "error" in e ? undefined : e;
      };
      const rows = entries.map((e, i) => ({
        e,
        changed: "error" in e.identifiers ? [] : changes(e.identifiers, readable(i + 1)),
      }));
      if (opts.json) {
        io.stdout(
          JSON.stringify(
            rows.map(({ e, changed }) => ({
              vm,
              archived_at: e.archivedAt,
              reason: e.reason,
              file: e.file,
              identifiers: "error" in e.identifiers ? null : identifiersToDict(e.identifiers),
              error: "error" in e.identifiers ? e.identifiers.error : null,
              changes: changed,
            })),
            null,
            2,
          ),
        );
        return;
      }
      if (entries.length === 0) {
        io.stdout(`VM "${vm}" has no past identities`);
        return;
      }
      const out: string[] = [];
      for (const { e, changed } of rows) {
        if ("error" in e.identifiers) {
          out.push(
            `${e.archivedAt}  replaced by ${e.reason}  (unreadable: ${e.identifiers.error})`,
          );
          continue;
        }
        out.push(
          `${e.archivedAt}  generation ${e.identifiers.generation}, VM UUID ${e.identifiers.vm_uuid}, replaced by ${e.reason}`,
        );
        const width = Math.max(0, ...changed.map((c) => c.field.length));
        for (const c of changed) out.push(`    ${c.field.padEnd(width)}  ${c.old} → ${c.new}`);
        if (changed.length === 0) out.push("    (no identifier changed)");
      }
      io.stdout(out.join("\n"));
    });
}
