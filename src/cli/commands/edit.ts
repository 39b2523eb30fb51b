/**
 * `glint edit VM [--memory MiB] [--cpus N] [--disk-size SIZE] [--yes]`:
 * change a stopped VM's machine. Memory and CPUs are config.json values;
 * `--disk-size` grows the VM's disk (its overlay, else its own base copy)
 * with `qemu-img resize` (never shrinks; a linked base is never changed).
 * Holds the VM's lock and refuses while its QEMU runs. Changing firmware or
 * adding a TPM after creation is not supported yet.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import type { Command } from "commander";
import { type AuditChange, contentWitness, mtimeOf, type Witness } from "../../audit/index.js";
import { GlintError, UsageError } from "../../errors.js";
import { requireTool } from "../../host/tools.js";
import { DISK_SIZE_RE, type VmConfig } from "../../vm/config.js";
import type { VmPaths } from "../../vm/layout.js";
import { withLock } from "../../vm/lock.js";
import { assertNotRunning } from "../../vm/running.js";
import { assertNoForeignSymlinks } from "../../vm/safety.js";
import { readConfigOrDefault, writeConfig } from "../../vm/store.js";
import { type CliEnv, type CommonOptions, common, definedOnly, parseInteger } from "../common.js";
import { confirmYesNo } from "../io.js";

const run = promisify(execFile);

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

function bytes(size: string): number {
  const m = /^([0-9]+)([KMGT]?)$/.exec(size);
  return Number(m?.[1] ?? 0) * (UNITS[m?.[2] ?? ""] ?? 1);
}

interface EditOptions extends CommonOptions {
  memory?: number;
  cpus?: number;
  diskSize?: string;
  yes?: boolean;
}

export function addEditCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("edit"))
    .description("change a stopped VM's memory, CPUs or disk size")
    .argument("<vm>", "VM name")
    .option("--memory <mib>", "guest memory in MiB", parseInteger)
    .option("--cpus <n>", "virtual CPUs", parseInteger)
    .option(
      "--disk-size <size>",
      "grow the VM's disk to SIZE, e.g. 16G (qemu-img resize; never shrinks)",
    )
    .option("--yes", "do not ask for confirmation")
    .action(async (vm: string, opts: EditOptions) => {
      if (opts.memory === undefined && opts.cpus === undefined && opts.diskSize === undefined)
        throw new UsageError("nothing to change: give --memory, --cpus or --disk-size");
      if (opts.diskSize !== undefined && !DISK_SIZE_RE.test(opts.diskSize))
        throw new UsageError(`--disk-size: '${opts.diskSize}' is not a size like 512M or 8G`);
      if (opts.memory !== undefined && opts.memory < 16)
        throw new UsageError("--memory: at least 16 MiB");
      if (opts.cpus !== undefined && opts.cpus > 255) throw new UsageError("--cpus: at most 255");
      const m = manager(opts.home);
      await m.assertExists(vm);
      await m.assertNotBusy(vm);
      const paths = m.paths(vm);
      const before = await m.getConfig(vm);
      const disk = before.overlay ? paths.overlay : paths.base;
      const changes = [
        opts.memory !== undefined ? `memory ${before.memory_mb} → ${opts.memory} MiB` : "",
        opts.cpus !== undefined ? `CPUs ${before.cpus} → ${opts.cpus}` : "",
        opts.diskSize !== undefined ? `disk ${disk} grown to ${opts.diskSize}` : "",
      ].filter(Boolean);
      if (!opts.yes) {
        const ok = await confirmYesNo(io, `Change "${vm}": ${changes.join(", ")}?`, "--yes");
        if (!ok) throw new GlintError("edit cancelled; nothing was changed", { code: "cancelled" });
      }
      await withLock(paths.lock, { purpose: "glint edit", vm }, async () => {
        await assertNoForeignSymlinks(paths);
        await assertNotRunning(paths);
        const config = await readConfigOrDefault(paths);
        const audited = definedOnly({
          memory_mb:
            opts.memory === undefined ? undefined : { old: config.memory_mb, new: opts.memory },
          cpus: opts.cpus === undefined ? undefined : { old: config.cpus, new: opts.cpus },
          disk_size:
            opts.diskSize === undefined
              ? undefined
              : { old: config.disk_size ?? null, new: opts.diskSize },
        });
        // A grown disk shows in its mtime; everything else in config.json.
        const witness: Witness =
          opts.diskSize !== undefined
            ? { kind: "mtime", path: disk, before: await mtimeOf(disk) }
            : await contentWitness(paths.config);
        await m.audit.change(vm, "edit", audited as Record<string, AuditChange>, witness, () =>
          applyEdit(paths, config, disk, opts),
        );
      });
      io.stdout(
        opts.json ? JSON.stringify({ vm, changed: changes }) : `"${vm}": ${changes.join(", ")}`,
      );
    });
}

/** Grow the disk and write config.json (the caller holds the VM's lock). */
async function applyEdit(
  paths: VmPaths,
  config: VmConfig,
  disk: string,
  opts: EditOptions,
): Promise<void> {
  if (opts.diskSize !== undefined) {
    if (!existsSync(disk))
      throw new GlintError(`VM "${paths.name}" has no disk to grow (${disk})`, {
        code: "unsupported",
      });
    if (!config.overlay && config.base?.linked)
      throw new GlintError(
        `VM "${paths.name}" uses a linked base and no overlay; its disk is shared`,
        {
          code: "unsupported",
        },
      );
    const qemuImg = await requireTool("qemu-img");
    const { stdout } = await run(qemuImg, ["info", "--output=json", "-U", disk]);
    const current = Number((JSON.parse(stdout) as { "virtual-size"?: number })["virtual-size"]);
    const wanted = bytes(opts.diskSize);
    if (wanted < current)
      throw new UsageError(
        `--disk-size: ${opts.diskSize} is smaller than the disk (${current} bytes); glint never shrinks a disk`,
      );
    if (wanted > current) await run(qemuImg, ["resize", "-q", disk, String(wanted)]);
  }
  await writeConfig(paths, {
    ...config,
    ...(opts.memory !== undefined ? { memory_mb: opts.memory } : {}),
    ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}),
    ...(opts.diskSize !== undefined && !config.base ? { disk_size: opts.diskSize } : {}),
  });
}
