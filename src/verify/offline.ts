/**
 * Verify a stopped VM from its disk (the overlay, else base.qcow2), read
 * offline and read-only with the sysprep engine's reader: the GPT disk GUID,
 * the root filesystem's UUID and PARTUUID, /etc/machine-id, /etc/hostname and
 * the SSH host keys. What only QEMU shows (UUID, generation ID, MAC) is
 * unavailable: QEMU takes it from identifiers.json when the VM starts.
 */
import { existsSync } from "node:fs";
import type { SystemIdentifiers } from "../identity/model.js";
import { type ImageInspection, inspectImage } from "../sysprep/index.js";
import type { VmConfig } from "../vm/config.js";
import type { VmPaths } from "../vm/layout.js";
import { type Check, compare, type GuestValues, unavailable } from "./checks.js";

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The image rows, from an inspection of the VM's disk. */
export function imageChecks(
  inspection: ImageInspection,
  ids: SystemIdentifiers,
  hostname: string,
): Check[] {
  const root = inspection.partitions.find((p) => p.number === inspection.rootPartition);
  const noRoot = "no root filesystem with /etc/fstab found on the disk";
  const or = (field: string, expected: string, seen: string | undefined, why: string) =>
    seen === undefined
      ? unavailable(field, expected, "image", why)
      : compare(field, expected, seen, "image", { caseInsensitive: field !== "hostname" });
  const keys = Object.values(inspection.sshHostKeys);
  return [
    or(
      "disk guid",
      ids.disk_uuid,
      inspection.diskGuid,
      inspection.partitionTable === "gpt"
        ? "no GPT disk GUID"
        : `a ${inspection.partitionTable} disk has no GPT disk GUID`,
    ),
    or("root partuuid", ids.partition_uuid, root?.partuuid, noRoot),
    or("root fs uuid", ids.filesystem_uuid, root?.uuid, noRoot),
    or("hostname", hostname, inspection.hostname, root ? "no /etc/hostname" : noRoot),
    or("machine-id", ids.machine_id, inspection.machineId, root ? "no /etc/machine-id" : noRoot),
    keys.length === 0
      ? unavailable(
          "ssh host keys",
          "present",
          "image",
          root ? "no SSH host keys in /etc/ssh" : noRoot,
        )
      : {
          field: "ssh host keys",
          expected: "present",
          seen: keys.join(" "),
          status: "ok",
          source: "image",
        },
  ];
}

function qemuOnlyRows(ids: SystemIdentifiers): Check[] {
  const why = "the VM is not running; QEMU takes this from identifiers.json when it starts";
  return [
    unavailable("vm uuid", ids.vm_uuid, "qmp", why),
    unavailable("vm generation id", ids.vm_generation_id, "qmp", why),
    unavailable("nic mac", ids.mac_address, "qmp", why),
  ];
}

/** The rows of a stopped VM. */
export async function verifyStopped(
  paths: VmPaths,
  ids: SystemIdentifiers,
  config: VmConfig,
  hostname: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ checks: Check[]; values: GuestValues }> {
  const disk = config.overlay ? paths.overlay : paths.base;
  const qemuRows = qemuOnlyRows(ids);
  const allUnavailable = (why: string) => [
    ...qemuRows,
    unavailable("root fs uuid", ids.filesystem_uuid, "image", why),
    unavailable("hostname", hostname, "image", why),
    unavailable("machine-id", ids.machine_id, "image", why),
  ];
  if (!existsSync(disk)) {
    return {
      checks: allUnavailable(`the VM is not running and has no disk (${disk})`),
      values: {},
    };
  }
  let inspection: ImageInspection;
  try {
    inspection = await inspectImage(disk, env ? { env } : {});
  } catch (e) {
    return { checks: allUnavailable(`reading ${disk} failed: ${message(e)}`), values: {} };
  }
  const keys = Object.values(inspection.sshHostKeys);
  return {
    checks: [...qemuRows, ...imageChecks(inspection, ids, hostname)],
    values: {
      ...(inspection.machineId === undefined ? {} : { machineId: inspection.machineId }),
      ...(keys.length === 0 ? {} : { sshHostKeys: keys }),
    },
  };
}
