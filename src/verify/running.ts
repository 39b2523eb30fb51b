/**
 * Verify a running VM: QEMU's own view over QMP (`query-uuid`,
 * `query-vm-generation-id`, `query-rx-filter`) and the guest's view over the
 * QEMU guest agent.
 */
import type { SystemIdentifiers } from "../identity/model.js";
import { diskSerial } from "../qemu/mapping.js";
import type { VmPaths } from "../vm/layout.js";
import { among, type Check, compare, type GuestValues, unavailable } from "./checks.js";
import { readAgentView } from "./guest-agent.js";
import { QgaClient } from "./qga.js";
import { QmpClient } from "./qmp.js";

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export interface LiveOptions {
  /** How long to wait for each socket and answer (default 5 s). */
  timeoutMs?: number;
}

async function qmpChecks(
  paths: VmPaths,
  ids: SystemIdentifiers,
  timeoutMs: number,
): Promise<Check[]> {
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(paths.qmpSocket, timeoutMs);
  } catch (e) {
    const why = `no QMP at ${paths.qmpSocket} (${message(e)}); was the VM started by glint run?`;
    return [
      unavailable("vm uuid", ids.vm_uuid, "qmp", why),
      unavailable("vm generation id", ids.vm_generation_id, "qmp", why),
      unavailable("nic mac", ids.mac_address, "qmp", why),
    ];
  }
  try {
    const out: Check[] = [];
    try {
      const r = (await qmp.execute("query-uuid", undefined, timeoutMs)) as { UUID?: string };
      out.push(compare("vm uuid", ids.vm_uuid, r.UUID, "qmp", { caseInsensitive: true }));
    } catch (e) {
      out.push(unavailable("vm uuid", ids.vm_uuid, "qmp", message(e)));
    }
    try {
      const r = (await qmp.execute("query-vm-generation-id", undefined, timeoutMs)) as {
        guid?: string;
      };
      out.push(
        compare("vm generation id", ids.vm_generation_id, r.guid, "qmp", { caseInsensitive: true }),
      );
    } catch (e) {
      out.push(unavailable("vm generation id", ids.vm_generation_id, "qmp", message(e)));
    }
    try {
      const r = (await qmp.execute("query-rx-filter", undefined, timeoutMs)) as {
        name?: string;
        "main-mac"?: string;
      }[];
      const macs = r.map((f) => f["main-mac"]).filter((m): m is string => typeof m === "string");
      out.push(
        macs.length === 0
          ? unavailable("nic mac", ids.mac_address, "qmp", "the VM has no NIC")
          : among("nic mac", ids.mac_address, macs, "qmp"),
      );
    } catch (e) {
      out.push(unavailable("nic mac", ids.mac_address, "qmp", message(e)));
    }
    return out;
  } finally {
    qmp.close();
  }
}

async function agentChecks(
  paths: VmPaths,
  ids: SystemIdentifiers,
  hostname: string,
  timeoutMs: number,
): Promise<{ checks: Check[]; values: GuestValues }> {
  const rows = {
    hostname,
    "machine-id": ids.machine_id,
    "root fs uuid": ids.filesystem_uuid,
    "root partuuid": ids.partition_uuid,
    "disk serial": diskSerial(ids.disk_uuid),
    "guest mac": ids.mac_address,
  };
  let qga: QgaClient;
  try {
    qga = await QgaClient.connect(paths.qgaSocket, timeoutMs);
  } catch (e) {
    const why = `the guest agent does not answer (${message(e)}); is qemu-guest-agent installed and running in the guest?`;
    return {
      checks: [
        ...Object.entries(rows).map(([f, v]) => unavailable(f, v, "guest-agent", why)),
        unavailable("ssh host keys", "present", "guest-agent", why),
      ],
      values: {},
    };
  }
  try {
    const v = await readAgentView(qga);
    const orWhy = (field: string, expected: string, seen: string | undefined, why?: string) =>
      seen === undefined
        ? unavailable(field, expected, "guest-agent", why ?? "not reported")
        : compare(field, expected, seen, "guest-agent", { caseInsensitive: field !== "hostname" });
    const keys = Object.values(v.sshHostKeys);
    const checks: Check[] = [
      orWhy("hostname", hostname, v.hostname, v.why.hostname),
      orWhy("machine-id", ids.machine_id, v.machineId, v.why.machineId),
      orWhy("root fs uuid", ids.filesystem_uuid, v.rootUuid, v.why.rootUuid),
      orWhy("root partuuid", ids.partition_uuid, v.rootPartuuid, v.why.rootPartuuid),
      v.rootDiskSerials.length === 0
        ? unavailable("disk serial", rows["disk serial"], "guest-agent", v.why.diskSerial ?? "")
        : among("disk serial", rows["disk serial"], v.rootDiskSerials, "guest-agent"),
      v.macs.length === 0
        ? unavailable("guest mac", ids.mac_address, "guest-agent", v.why.macs ?? "no NIC")
        : among("guest mac", ids.mac_address, v.macs, "guest-agent"),
      keys.length === 0
        ? unavailable("ssh host keys", "present", "guest-agent", v.why.sshHostKeys ?? "")
        : {
            field: "ssh host keys",
            expected: "present",
            seen: keys.join(" "),
            status: "ok",
            source: "guest-agent",
          },
    ];
    return {
      checks,
      values: {
        ...(v.machineId === undefined ? {} : { machineId: v.machineId }),
        sshHostKeys: keys,
      },
    };
  } finally {
    qga.close();
  }
}

/** The rows of a running VM: QMP's, then the guest agent's. */
export async function verifyRunning(
  paths: VmPaths,
  ids: SystemIdentifiers,
  hostname: string,
  options: LiveOptions = {},
): Promise<{ checks: Check[]; values: GuestValues }> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const qmp = await qmpChecks(paths, ids, timeoutMs);
  const agent = await agentChecks(paths, ids, hostname, timeoutMs);
  return { checks: [...qmp, ...agent.checks], values: agent.values };
}
