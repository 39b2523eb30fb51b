/**
 * `glint backup VM… | --all [-o FILE|DIR] [--with-disk] [--live]` and
 * `glint restore FILE [--as NAME] [--as-clone] [--force]` (see src/backup/).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { archiveName } from "../../backup/backup.js";
import { UsageError } from "../../errors.js";
import { identifiersToDict } from "../../identity/model.js";
import { type BulkOptions, bulkOperands, forEachVm, selectVms } from "../bulk.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";

interface BackupCliOptions extends BulkOptions {
  output?: string;
  withDisk?: boolean;
  live?: boolean;
}

/** Where each VM's archive goes: `-o FILE` (one VM), else `-o DIR` or the current directory. */
async function targets(
  vms: readonly string[],
  output: string | undefined,
): Promise<Map<string, string>> {
  const isDir =
    output === undefined ||
    output.endsWith("/") ||
    (await fs.stat(output).catch(() => undefined))?.isDirectory() === true;
  if (!isDir && vms.length > 1) {
    throw new UsageError(`-o ${output}: several VMs need a directory (one archive per VM)`);
  }
  const dir = path.resolve(isDir ? (output ?? ".") : path.dirname(output ?? "."));
  if (!(await fs.stat(dir).catch(() => undefined))?.isDirectory()) {
    throw new UsageError(`-o: directory ${dir} does not exist`);
  }
  const now = new Date();
  return new Map(
    vms.map((vm) => [
      vm,
      isDir ? path.join(dir, archiveName(vm, now)) : path.resolve(output ?? ""),
    ]),
  );
}

export function addBackupCommands(program: Command, { io, manager }: CliEnv): void {
  bulkOperands(common(program.command("backup")))
    .description(
      "archive VMs (identity, config, history, UEFI variables, TPM, seed; --with-disk: disks)",
    )
    .option("-o, --output <path>", "the archive (one VM), or a directory for one archive per VM")
    .option("--with-disk", "also archive the overlay and the VM's own base copy (sparse)")
    .option("--live", "back up a running VM, paused through QMP meanwhile")
    .action(async (names: string[], opts: BackupCliOptions) => {
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts);
      const where = await targets(vms, opts.output);
      const task = async (vm: string) => {
        const file = where.get(vm) ?? "";
        const manifest = await m.backup(vm, file, {
          withDisk: Boolean(opts.withDisk),
          live: Boolean(opts.live),
        });
        const bytes = manifest.members.reduce((n, x) => n + x.size, 0);
        return {
          file,
          members: manifest.members.length,
          bytes,
          live: manifest.live,
          with_disk: manifest.with_disk,
        };
      };
      const line = (vm: string, r: Awaited<ReturnType<typeof task>>) =>
        `${vm}: backed up to ${r.file} (${r.members} files, ${r.bytes} bytes before compression)`;
      const [only] = vms;
      if (!bulk && only !== undefined) {
        // One VM named: its result alone (errors as for any single-VM command).
        const r = await task(only);
        io.stdout(opts.json ? JSON.stringify({ vm: only, ...r }, null, 2) : line(only, r));
        return;
      }
      await forEachVm(io, vms, opts, task, line);
    });

  common(program.command("restore"))
    .description("restore a VM from a backup archive (every checksum is checked first)")
    .argument("<file>", "the archive written by `glint backup`")
    .option("--as <name>", "restore under this name")
    .option(
      "--as-clone",
      "restore disks and config under --as NAME with a new identity (nuke policy)",
    )
    .option("--force", "replace an existing VM (its identity is kept in history/)")
    .action(
      async (
        file: string,
        opts: CommonOptions & { as?: string; asClone?: boolean; force?: boolean },
      ) => {
        const m = manager(opts.home);
        const r = await m.restore(path.resolve(file), {
          as: opts.as,
          asClone: opts.asClone,
          force: opts.force,
        });
        if (opts.json) {
          io.stdout(
            JSON.stringify({ ...r, identifiers: identifiersToDict(r.identifiers) }, null, 2),
          );
          return;
        }
        io.stdout(
          `restored "${r.vm}" from ${r.from}${r.clone ? " as a clone with a new identity" : ""} (VM UUID ${r.identifiers.vm_uuid})${r.replaced ? `; the replaced VM is kept in ${r.replaced}` : ""}`,
        );
      },
    );
}
