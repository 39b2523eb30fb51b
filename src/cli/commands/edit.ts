/**
 * `glint edit VM [--memory MiB] [--cpus N] [--nics N] [--disk-size SIZE]
 * [--firmware bios|uefi|uefi-secure] [--tpm|--no-tpm] [--yes]`: change a
 * stopped VM (src/ops/edit.ts), after confirming what changes.
 */
import { type Command, Option } from "commander";
import { type AuditChange, contentWitness, mtimeOf, type Witness } from "../../audit/index.js";
import { GlintError } from "../../errors.js";
import { checkEdit, describeEdit, type EditChanges } from "../../ops/edit.js";
import { FIRMWARE_KINDS, type FirmwareKind } from "../../vm/config.js";
import {
  type CliEnv,
  type CommonOptions,
  common,
  definedOnly,
  parseInteger,
  progress,
} from "../common.js";
import { confirmYesNo } from "../io.js";

interface EditOptions extends CommonOptions {
  memory?: number;
  cpus?: number;
  nics?: number;
  diskSize?: string;
  firmware?: FirmwareKind;
  tpm?: boolean;
  yes?: boolean;
}

export function addEditCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("edit"))
    .description("change a stopped VM's memory, CPUs, NICs, disk size, firmware or TPM")
    .argument("<vm>", "VM name")
    .option("--memory <mib>", "guest memory in MiB", parseInteger)
    .option("--cpus <n>", "virtual CPUs", parseInteger)
    .option("--nics <n>", "NICs on the VM's network backend (each with its own MAC)", parseInteger)
    .option(
      "--disk-size <size>",
      "grow the VM's disk to SIZE, e.g. 16G (qemu-img resize; never shrinks)",
    )
    .addOption(
      new Option("--firmware <kind>", "new firmware; resets the UEFI variables").choices(
        FIRMWARE_KINDS,
      ),
    )
    .option("--tpm", "add a TPM 2.0 (swtpm)")
    .option("--no-tpm", "remove the TPM (its state is kept in history/)")
    .option("--yes", "do not ask for confirmation")
    .action(async (vm: string, opts: EditOptions) => {
      const changes: EditChanges = {
        memoryMb: opts.memory,
        cpus: opts.cpus,
        nics: opts.nics,
        diskSize: opts.diskSize,
        firmware: opts.firmware,
        tpm: opts.tpm,
      };
      checkEdit(changes);
      const m = manager(opts.home);
      await m.assertExists(vm);
      await m.assertNotBusy(vm);
      const planned = describeEdit(m.paths(vm), await m.getConfig(vm), changes);
      if (planned.length > 0 && !opts.yes) {
        const ok = await confirmYesNo(io, `Change "${vm}": ${planned.join(", ")}?`, "--yes");
        if (!ok) throw new GlintError("edit cancelled; nothing was changed", { code: "cancelled" });
      }
      const paths = m.paths(vm);
      const before = await m.getConfig(vm);
      const disk = before.overlay ? paths.overlay : paths.base;
      const audited = definedOnly({
        memory_mb:
          opts.memory === undefined ? undefined : { old: before.memory_mb, new: opts.memory },
        cpus: opts.cpus === undefined ? undefined : { old: before.cpus, new: opts.cpus },
        disk_size:
          opts.diskSize === undefined
            ? undefined
            : { old: before.disk_size ?? null, new: opts.diskSize },
        firmware:
          opts.firmware === undefined ? undefined : { old: before.firmware, new: opts.firmware },
        tpm: opts.tpm === undefined ? undefined : { old: before.tpm, new: opts.tpm },
        nics: opts.nics === undefined ? undefined : { old: null, new: opts.nics },
      });
      // A grown disk shows in its mtime; everything else in config.json.
      const witness: Witness =
        opts.diskSize !== undefined
          ? { kind: "mtime", path: disk, before: await mtimeOf(disk) }
          : await contentWitness(paths.config);
      const changed = await m.audit.change(
        vm,
        "edit",
        audited as Record<string, AuditChange>,
        witness,
        () => m.editVm(vm, changes, progress(io, opts.json)),
      );
      const text = changed.length > 0 ? changed.join(", ") : "nothing to change";
      io.stdout(opts.json ? JSON.stringify({ vm, changed }) : `"${vm}": ${text}`);
    });
}
