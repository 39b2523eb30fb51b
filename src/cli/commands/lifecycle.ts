/**
 * `glint start`, `stop`, `status` and `rm`. `start` runs `glint run` detached
 * (so that the VM stays locked, with its swtpm, for QEMU's whole life), with
 * no display (or VNC), the serial console in `<vm>/console.log` and a QMP
 * socket `<vm>/qmp.sock`; `stop` asks the guest to power down through QMP
 * and kills QEMU after a timeout.
 */
import { spawn } from "node:child_process";
import { closeSync, promises as fs, openSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { type Command, Option } from "commander";
import { GlintError } from "../../errors.js";
import { QmpClient } from "../../qemu/qmp-client.js";
import { storePaths } from "../../vm/layout.js";
import { withLock } from "../../vm/lock.js";
import { assertNotRunning, runningQemuPid } from "../../vm/running.js";
import { type BulkOptions, bulkOperands, confirmSet, forEachVm, selectVms } from "../bulk.js";
import {
  afterDoubleDash,
  type CliEnv,
  type CommonOptions,
  common,
  parseInteger,
} from "../common.js";
import {
  consoleLog,
  consoleSocket,
  runningInfo,
  startLog,
  waitFor,
  waitStopped,
} from "../lifecycle.js";
import { vmState } from "../state.js";

export function addLifecycleCommands(program: Command, { io, manager }: CliEnv): void {
  common(program.command("start"))
    .description(
      "start the VM in the background: no display (or --vnc), serial console in console.log, QMP socket qmp.sock",
    )
    .argument("<vm>", "VM name")
    .argument("[qemu-args...]", "extra QEMU arguments (after --)")
    .addOption(
      new Option("--accel <accel>", "kvm, tcg or auto (see `glint run`)")
        .choices(["kvm", "tcg", "auto"])
        .default("auto"),
    )
    .option("--vnc <display>", "a VNC display instead of none, e.g. 127.0.0.1:1")
    .action(
      async (
        vm: string,
        operands: string[],
        opts: CommonOptions & { accel: string; vnc?: string },
        cmd: Command,
      ) => {
        const extra = afterDoubleDash(cmd, operands, "QEMU arguments");
        const m = manager(opts.home);
        await m.assertExists(vm);
        await m.assertNotBusy(vm);
        const paths = m.paths(vm);
        const log = startLog(paths);
        const out = openSync(log, "w", 0o600);
        const child = spawn(
          process.execPath,
          [
            process.argv[1] ?? "",
            "run",
            vm,
            "--home",
            m.home,
            "--accel",
            opts.accel,
            "--",
            ...(opts.vnc ? ["-vnc", opts.vnc] : ["-display", "none"]),
            // The serial console: a socket `glint console` attaches to, logged to console.log.
            "-chardev",
            `socket,id=glint-serial,path=${consoleSocket(paths)},server=on,wait=off,logfile=${consoleLog(paths)},logappend=off`,
            "-serial",
            "chardev:glint-serial",
            "-qmp",
            `unix:${paths.qmpSocket},server=on,wait=off`,
            ...extra,
          ],
          { detached: true, stdio: ["ignore", out, out] },
        );
        closeSync(out);
        let exited = false;
        child.once("exit", () => {
          exited = true;
        });
        child.unref();
        // Started when QEMU's pidfile names a live QEMU; failed if `glint run` exits first.
        // (With --accel auto, a KVM that does not work makes it exit within seconds.)
        let pid: number | undefined;
        const ok = await waitFor(async () => {
          pid = await runningQemuPid(paths);
          return pid !== undefined || exited;
        }, 60_000);
        if (pid !== undefined && opts.accel === "auto") {
          // Let the KVM watch of `glint run` decide before saying it started.
          await waitFor(async () => exited, 7_000);
        }
        if (!ok || exited) {
          const text = readFileSync(log, "utf8").trim().split("\n");
          const last =
            [...text].reverse().find((l) => l.startsWith("glint: ")) ?? text.at(-1) ?? "";
          throw new GlintError(
            `VM "${vm}" did not start: ${last.replace(/^glint: /, "")} (see ${log})`,
          );
        }
        const result = { vm, pid, console: consoleLog(paths), qmp: paths.qmpSocket, log };
        io.stdout(
          opts.json
            ? JSON.stringify(result)
            : `started "${vm}": QEMU pid ${pid}; serial console in ${result.console}; stop it with \`glint stop ${vm}\``,
        );
      },
    );

  common(program.command("console"))
    .description(
      "attach to the serial console of a VM started with `glint start` (Ctrl-] detaches)",
    )
    .argument("<vm>", "VM name")
    .action(async (vm: string, opts: CommonOptions) => {
      const m = manager(opts.home);
      const paths = m.paths(vm);
      if ((await runningQemuPid(paths)) === undefined)
        throw new GlintError(
          `VM "${vm}" is not running; its last output is in ${consoleLog(paths)}`,
          {
            code: "not-found",
          },
        );
      const sock = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(consoleSocket(paths));
        s.once("connect", () => resolve(s));
        s.once("error", () =>
          reject(
            new GlintError(
              `VM "${vm}" has no serial console socket (started with \`glint run\`, or attached elsewhere)`,
              { code: "busy" },
            ),
          ),
        );
      });
      const tty = Boolean(process.stdin.isTTY);
      if (tty) {
        io.stderr(`attached to "${vm}"; Ctrl-] detaches`);
        process.stdin.setRawMode(true);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          if (tty) process.stdin.setRawMode(false);
          process.stdin.pause();
          sock.destroy();
          resolve();
        };
        sock.on("data", (d: Buffer) => process.stdout.write(d));
        sock.once("close", done);
        process.stdin.on("data", (d: Buffer) => {
          if (tty && d.includes(0x1d)) done();
          else sock.write(d);
        });
        process.stdin.resume();
      });
    });

  bulkOperands(common(program.command("stop")))
    .description("stop running VMs: ACPI power-down through QMP, then kill after --timeout")
    .option("--force", "kill QEMU at once instead of asking the guest to power down")
    .option(
      "--timeout <seconds>",
      "how long the guest gets to power down (default 30)",
      parseInteger,
    )
    .action(async (names: string[], opts: BulkOptions & { force?: boolean; timeout?: number }) => {
      const m = manager(opts.home);
      const { vms } = await selectVms(m, names, opts);
      await forEachVm(
        io,
        vms,
        opts,
        async (vm) => {
          const paths = m.paths(vm);
          const pid = await runningQemuPid(paths);
          if (pid === undefined) {
            await m.getIdentifiers(vm); // a VM that does not exist is an error
            return { stopped: false, how: "not running" };
          }
          const gone = async () => (await runningQemuPid(paths)) === undefined;
          let how = "killed";
          if (!opts.force) {
            const qmp = await QmpClient.connect(paths.qmpSocket, 3_000).catch(() => undefined);
            if (qmp) {
              await qmp.execute("system_powerdown").catch(() => undefined);
              qmp.close();
              if (await waitFor(gone, (opts.timeout ?? 30) * 1000)) how = "powered down";
            }
          }
          if (!(await gone())) {
            process.kill(pid, "SIGTERM");
            if (!(await waitFor(gone, 5_000))) process.kill(pid, "SIGKILL");
          }
          // Until `glint run` has stopped swtpm and released the VM.
          await waitStopped(m, vm, 15_000);
          return { stopped: true, how };
        },
        (vm, r) => `${vm}: ${r.stopped ? `stopped (${r.how})` : "not running"}`,
      );
    });

  bulkOperands(common(program.command("status")))
    .description("running or stopped, with QEMU's pid, uptime and VNC display (default: all VMs)")
    .action(async (names: string[], opts: BulkOptions) => {
      const m = manager(opts.home);
      const { vms } = await selectVms(m, names, opts, true);
      await forEachVm(
        io,
        vms,
        opts,
        async (vm) => {
          await fs.lstat(m.paths(vm).dir).catch(() => {
            throw new GlintError(`VM "${vm}" does not exist in ${m.home}`, { code: "not-found" });
          });
          const { state, pid } = await vmState(m, vm);
          return pid === undefined ? { state } : { state, ...runningInfo(m.paths(vm), pid) };
        },
        (vm, r) => {
          if (!("pid" in r)) return `${vm}: ${r.state}`;
          return `${vm}: ${r.state}, pid ${r.pid}, up ${r.uptimeSeconds} s${r.vnc ? `, VNC ${r.vnc}` : ""}`;
        },
      );
    });

  bulkOperands(common(program.command("rm")))
    .description(
      "delete VMs (refused while one runs); --keep-history moves them to <home>/.glint/archive/",
    )
    .option("--yes", "do not ask for the VM name (or the number of VMs) to be typed back")
    .option("--keep-history", "move the VM directory to the archive instead of deleting it")
    .action(async (names: string[], opts: BulkOptions & { keepHistory?: boolean }) => {
      const m = manager(opts.home);
      const { vms, bulk } = await selectVms(m, names, opts);
      if (!bulk) {
        const vm = vms[0] ?? "";
        await fs.lstat(m.paths(vm).dir).catch(() => {
          throw new GlintError(`VM "${vm}" does not exist in ${m.home}`, { code: "not-found" });
        });
        await m.assertNotBusy(vm);
      }
      await confirmSet(
        io,
        (set) =>
          `${opts.keepHistory ? "Move" : "Delete"} ${set}${opts.keepHistory ? " to the archive" : ", its disks, UEFI variables, TPM and history"}?`,
        vms,
        { ...opts, typed: true },
        "rm",
      );
      const archive = storePaths(m.home).archive;
      await forEachVm(
        io,
        vms,
        opts,
        async (vm) => {
          const paths = m.paths(vm);
          await fs.lstat(paths.dir).catch(() => {
            throw new GlintError(`VM "${vm}" does not exist in ${m.home}`, { code: "not-found" });
          });
          return withLock(paths.lock, { purpose: "glint rm", vm }, async () => {
            await assertNotRunning(paths);
            // Renamed away first (atomic): no half-deleted VM is ever listed.
            const stamp = new Date().toISOString().replaceAll(":", "-");
            await fs.mkdir(archive, { recursive: true, mode: 0o700 });
            const moved = path.join(archive, `${vm}-${stamp}`);
            const vmUuid = await m.getIdentifiers(vm).then(
              (ids) => ids.vm_uuid,
              () => null,
            );
            await m.audit.change(
              vm,
              "rm",
              {
                vm_uuid: { old: vmUuid, new: null },
                directory: { old: paths.dir, new: opts.keepHistory ? moved : null },
              },
              { kind: "absent", path: paths.dir },
              () => fs.rename(paths.dir, moved),
            );
            if (!opts.keepHistory) await fs.rm(moved, { recursive: true, force: true });
            return { removed: true, archived: opts.keepHistory ? moved : null };
          });
        },
        (vm, r) => (r.archived ? `${vm}: moved to ${r.archived}` : `${vm}: deleted`),
      );
    });
}
