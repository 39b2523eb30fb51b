/**
 * `glint run VM [--accel kvm|tcg|auto] [-- QEMU-ARGS…]`: QEMU in the
 * foreground with the VM's identity. Without a display ($DISPLAY and
 * $WAYLAND_DISPLAY unset) and without a display or serial option among the
 * QEMU arguments, the VM runs with `-display none` and its serial console on
 * this terminal. With `--accel auto` (the default) and KVM, a KVM that does
 * not work fails within seconds, naming `--accel tcg`.
 */
import { type Command, Option } from "commander";
import { UsageError } from "../../errors.js";
import { afterDoubleDash, type CliEnv, type CommonOptions, common } from "../common.js";
import { shellQuote } from "../shell.js";

/** How long `--accel auto` gives a KVM guest to show progress. */
const KVM_WATCH_MS = 6_000;

const DISPLAY_OPTIONS = new Set([
  "-display",
  "-nographic",
  "-vnc",
  "-spice",
  "-curses",
  "-serial",
  "-sdl",
]);

/** `-display none -serial mon:stdio` when there is no display and the user chose none. */
export function headlessArgs(extra: readonly string[], env: NodeJS.ProcessEnv): string[] {
  if (env.DISPLAY || env.WAYLAND_DISPLAY) return [];
  if (extra.some((a) => DISPLAY_OPTIONS.has(a))) return [];
  return ["-display", "none", "-serial", "mon:stdio"];
}

type Accel = "kvm" | "tcg" | "auto";

export function addRunCommand(program: Command, { io, manager, setExitCode }: CliEnv): void {
  common(program.command("run"))
    .description(
      "run the VM with qemu-system-x86_64 in the foreground, with its identity, firmware, TPM and disks",
    )
    .argument("<vm>", "VM name")
    .argument("[qemu-args...]", "extra QEMU arguments (after --), e.g. -kernel … -nographic")
    .option("--dry-run", "print the command instead of running it")
    .addOption(
      new Option(
        "--accel <accel>",
        "kvm, tcg (software emulation), or auto: KVM if /dev/kvm opens, failing fast if KVM does not work",
      )
        .choices(["kvm", "tcg", "auto"])
        .default("auto"),
    )
    .action(
      async (
        vm: string,
        operands: string[],
        opts: CommonOptions & { dryRun?: boolean; accel: Accel },
        cmd: Command,
      ) => {
        const user = afterDoubleDash(cmd, operands, "QEMU arguments");
        const choosesAccel = user.some((a) => a === "-accel" || a === "-enable-kvm");
        if (choosesAccel && opts.accel !== "auto")
          throw new UsageError("give --accel, or -accel among the QEMU arguments, not both");
        const extra = [
          ...(opts.accel === "auto" ? [] : ["-accel", opts.accel]),
          ...headlessArgs(user, process.env),
          ...user,
        ];
        const m = manager(opts.home);
        const { argv, exitCode, sidecar, sidecarCwd } = await m.run(vm, {
          extra,
          dryRun: Boolean(opts.dryRun),
          ...(opts.accel === "auto" ? { kvmWatchMs: KVM_WATCH_MS } : {}),
        });
        if (opts.dryRun) {
          const cwd = sidecarCwd === undefined ? {} : { swtpm_cwd: sidecarCwd };
          // Relative swtpm paths: run it in a subshell that changes to the VM directory.
          const swtpmLine =
            sidecar &&
            (sidecarCwd === undefined
              ? shellQuote(sidecar)
              : `(cd ${shellQuote([sidecarCwd])} && exec ${shellQuote(sidecar)})`);
          if (opts.json)
            io.stdout(JSON.stringify(sidecar ? { swtpm: sidecar, ...cwd, qemu: argv } : argv));
          else io.stdout(swtpmLine ? `${swtpmLine} &\n${shellQuote(argv)}` : shellQuote(argv));
        }
        setExitCode(exitCode);
      },
    );
}
