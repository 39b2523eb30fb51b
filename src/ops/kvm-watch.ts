/**
 * `glint run --accel auto` with KVM: /dev/kvm can open on a host where KVM
 * does not work (nested or broken virtualisation). QEMU then either prints
 * "KVM internal error" and stops, or the guest never runs an instruction
 * (QEMU cannot even read its registers). This watches the first seconds of
 * a run through QMP and says which, so that the run fails with advice
 * instead of hanging.
 */
import type { ChildProcess } from "node:child_process";
import { QmpClient } from "../qemu/qmp-client.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves to undefined once the guest makes progress (its instruction
 * pointer moves, or it halts in an idle loop) or QEMU exits, or to the
 * reason KVM failed: QEMU's "KVM internal error", or no progress at all
 * within `timeoutMs`.
 */
export async function watchKvmStart(
  child: ChildProcess,
  qmpSocket: string,
  stderrSoFar: () => string,
  timeoutMs: number,
): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  let qmp: QmpClient | undefined;
  let last: string | undefined;
  try {
    while (Date.now() < deadline) {
      if (/KVM internal error/i.test(stderrSoFar())) return "QEMU reports a KVM internal error";
      if (exited()) return undefined;
      if (qmp === undefined) {
        qmp = await QmpClient.connect(qmpSocket, 1_000).catch(() => undefined);
      }
      if (qmp !== undefined) {
        const status = (await qmp.execute("query-status").catch(() => undefined)) as
          | { status?: string }
          | undefined;
        if (status?.status === "internal-error") return "QEMU reports a KVM internal error";
        const regs = String(
          await qmp
            .execute("human-monitor-command", { "command-line": "info registers" })
            .catch(() => ""),
        );
        const rip = /\bRIP=([0-9a-f]+)/i.exec(regs)?.[1];
        if (/\bHLT=1\b/.test(regs)) return undefined;
        if (rip !== undefined && last !== undefined && rip !== last) return undefined;
        last = rip ?? last;
      }
      await sleep(400);
    }
    if (exited()) return undefined;
    return `the guest did not run a single instruction in ${Math.round(timeoutMs / 1000)} s`;
  } finally {
    qmp?.close();
  }
}
