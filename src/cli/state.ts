/**
 * What `list` and `show` say about a VM beyond its identifiers: whether it
 * runs, and its machine (firmware, TPM, disks, memory, CPUs). Reads files
 * only; no external tool runs.
 */
import type { UuidManager } from "../manager.js";
import { stateOf, type VmState } from "../ops/listing.js";
import type { VmConfig } from "../vm/config.js";

export type { VmState };

/**
 * `running` while its QEMU runs (the pidfile `glint run` has QEMU write),
 * `interrupted` when an operation on it was cut short (its journal is
 * there; the next command that changes it finishes or rolls it back),
 * otherwise `stopped`.
 */
export function vmState(m: UuidManager, vm: string): Promise<{ state: VmState; pid?: number }> {
  return stateOf(m.paths(vm));
}

/** The "VM" block of `glint show`: firmware, TPM and EK, disks, memory, CPUs. */
export async function vmBlock(
  m: UuidManager,
  vm: string,
  config: VmConfig,
  indent = "  ",
): Promise<string> {
  let tpm = "none";
  if (config.tpm) {
    const ek = await m.ekFingerprint(vm).catch((e: unknown) => `unreadable (${String(e)})`);
    tpm = `${config.tpm_model}, EK ${ek ?? "?"}`;
  }
  const { state, pid } = await vmState(m, vm);
  const base = config.base
    ? `${config.base.source}${config.base.linked ? " (linked)" : " (copied)"}`
    : config.disk_size
      ? `blank, ${config.disk_size}`
      : "none";
  const rows: [string, string][] = [
    ["State", pid === undefined ? state : `${state} (QEMU pid ${pid})`],
    ["Firmware", config.firmware],
    ["TPM", tpm],
    ["Base image", base],
    ["Overlay", config.overlay ? "yes (overlay.qcow2)" : "no"],
    ["Memory", `${config.memory_mb} MiB`],
    ["CPUs", String(config.cpus)],
    [
      "Network",
      `${config.net_ifname ? `${config.net} (${config.net_ifname})` : config.net}${config.net !== "none" && config.nics > 1 ? `, ${config.nics} NICs` : ""}`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    `${indent.slice(2)}VM`,
    ...rows.map(([k, v]) => `${indent}${k.padEnd(width)}  ${v}`),
  ].join("\n");
}
