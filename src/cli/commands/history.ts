/**
 * `glint history VM`: a VM's past identities, oldest first, each with what
 * the next generation changed (field: old → new). The last archived entry is
 * compared with the VM's current identity.
 */
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import {
  EXTRA_MACS,
  extraMacsOf,
  IDENTIFIER_FIELDS,
  identifiersToDict,
  type SystemIdentifiers,
} from "../../identity/model.js";
import type { ArchivedFile } from "../../vm/history.js";
import { type BulkOptions, bulkOperands, confirmSet, forEachVm, selectVms } from "../bulk.js";
import { type CliEnv, type CommonOptions, common, parseInteger } from "../common.js";

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

/** "540 KiB": a size for people. */
export function humanSize(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} bytes` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

const fileJson = (f: ArchivedFile) => ({
  file: f.file,
  kind: f.kind,
  archived_at: f.archivedAt,
  reason: f.reason,
  size: f.size,
});
const fileLine = (f: ArchivedFile) =>
  `    archived ${f.kind.padEnd(10)} ${humanSize(f.size).padStart(9)}  ${f.file}`;

interface PruneOptions extends BulkOptions {
  keep?: number;
}

function addPruneCommand(history: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(history.command("prune")))
    .description(
      "remove a VM's oldest archived generations (identities, NVRAM, TPM state, overlays in history/)",
    )
    .requiredOption("--keep <n>", "archived generations to keep (the newest)", (v: string) =>
      v === "0" ? 0 : parseInteger(v),
    )
    .option("--yes", "do not ask for confirmation")
    .action(async (names: string[], opts: PruneOptions) => {
      const keep = opts.keep ?? -1;
      if (!Number.isInteger(keep) || keep < 0)
        throw new UsageError("--keep: a number of generations, 0 or more");
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts);
      if (!bulk) await m.historyGenerations(vms[0] ?? "");
      await confirmSet(
        io,
        (set) =>
          `Remove the archived generations of ${set} beyond the newest ${keep} (identities, NVRAM, TPM state and overlays in history/)?`,
        vms,
        opts,
        "history prune",
      );
      const describe = (removed: ArchivedFile[]) =>
        removed.length === 0
          ? "nothing to prune"
          : `removed ${removed.filter((f) => f.kind === "identifiers").length} generation(s), ${removed.length} file(s), ${humanSize(removed.reduce((n, f) => n + f.size, 0))}`;
      const toJson = (removed: ArchivedFile[]) => ({ keep, removed: removed.map(fileJson) });
      if (!bulk) {
        const vm = vms[0] ?? "";
        const removed = await m.pruneHistory(vm, keep);
        io.stdout(
          opts.json ? JSON.stringify({ vm, ...toJson(removed) }) : `${vm}: ${describe(removed)}`,
        );
        return;
      }
      await forEachVm(
        io,
        vms,
        opts,
        (vm) => m.pruneHistory(vm, keep),
        (vm, r) => `${vm}: ${describe(r)}`,
        toJson,
      );
    });
}

export function addHistoryCommand(program: Command, env: CliEnv): void {
  const { io, manager } = env;
  const history = common(program.command("history"))
    .description(
      "list a VM's past identities, oldest first, with what each new generation changed and the NVRAM, TPM state and overlays archived with it; `history prune` removes old ones",
    )
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const m = manager(opts.home);
      const entries = await m.history(vm);
      const generations = await m.historyGenerations(vm);
      const filesOf = (file: string | undefined) =>
        generations.find((g) => g.identifiers?.file === file)?.files ?? [];
      const since = generations.find((g) => g.identifiers === undefined)?.files ?? [];
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
            rows
              .map(({ e, changed }) => ({
                vm,
                archived_at: e.archivedAt,
                reason: e.reason,
                file: e.file,
                identifiers: "error" in e.identifiers ? null : identifiersToDict(e.identifiers),
                error: "error" in e.identifiers ? e.identifiers.error : null,
                changes: changed,
                files: filesOf(e.file).map(fileJson),
              }))
              .concat(
                since.length === 0
                  ? []
                  : [
                      {
                        vm,
                        archived_at: null,
                        reason: "current",
                        file: null,
                        identifiers: null,
                        error: null,
                        changes: [],
                        files: since.map(fileJson),
                      } as never,
                    ],
              ),
            null,
            2,
          ),
        );
        return;
      }
      if (entries.length === 0 && since.length === 0) {
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
        out.push(...filesOf(e.file).map(fileLine));
      }
      if (since.length > 0) {
        out.push("archived during the current generation:", ...since.map(fileLine));
      }
      io.stdout(out.join("\n"));
    });
  addPruneCommand(history, env);
}
