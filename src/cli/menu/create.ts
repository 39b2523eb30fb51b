/** The menu's "Create a new VM" flow. */
import os from "node:os";
import path from "node:path";
import { VM_NAME_RE } from "../../identity/formats.js";
import { DISK_SIZE_RE, FIRMWARE_KINDS, type FirmwareKind } from "../../vm/config.js";
import { isFile } from "../../vm/fsutil.js";
import { formatIdentity } from "../format.js";
import type { CreateVmOptions } from "./api.js";
import { type Ctx, withSpinner } from "./context.js";

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p;
}

const FIRMWARE_NAMES: Record<FirmwareKind, string> = {
  bios: "BIOS",
  uefi: "UEFI",
  "uefi-secure": "UEFI with Secure Boot",
};

export async function createFlow(ctx: Ctx, existing: readonly string[]): Promise<void> {
  const { api, deps, c } = ctx;
  const name = (
    await deps.input({
      message: "Name of the new VM (it becomes the hostname):",
      validate: (value) => {
        const v = value.trim();
        if (!VM_NAME_RE.test(v))
          return "use 1–63 lowercase letters, digits and '-', starting with a letter or digit";
        if (existing.includes(v)) return `there is already a VM named "${v}"`;
        return true;
      },
    })
  ).trim();
  const baseAnswer = (
    await deps.input({
      message: "Base image to start from (path to a qcow2 image; leave empty for none):",
      validate: async (value) => {
        const v = value.trim();
        if (v === "") return true;
        return (await isFile(path.resolve(expandHome(v)))) || `no such file: ${v}`;
      },
    })
  ).trim();
  const base = baseAnswer === "" ? undefined : path.resolve(expandHome(baseAnswer));
  const overlay =
    base === undefined
      ? false
      : await deps.confirm({
          message: "Put a copy-on-write overlay on the base image (so it can be regenerated)?",
          default: true,
        });
  const diskSize =
    base !== undefined
      ? ""
      : (
          await deps.input({
            message: "Size of a blank disk, e.g. 8G (leave empty for no disk):",
            validate: (value) => {
              const v = value.trim().toUpperCase();
              return v === "" || DISK_SIZE_RE.test(v) || "use a size like 512M or 8G";
            },
          })
        )
          .trim()
          .toUpperCase();
  const firmware = await deps.select<FirmwareKind>({
    message: "Firmware:",
    choices: FIRMWARE_KINDS.map((f) => ({ value: f, name: FIRMWARE_NAMES[f] })),
    default: "bios",
  });
  const tpm = await deps.confirm({ message: "Add a TPM 2.0?", default: false });
  const options: CreateVmOptions = { firmware, tpm };
  if (base !== undefined) {
    options.base = base;
    options.overlay = overlay;
  }
  if (diskSize !== "") options.diskSize = diskSize;
  const result = await withSpinner(ctx, `Creating ${name}…`, (onProgress) =>
    api.createVm(name, { ...options, onProgress }),
  );
  deps.print(`${c.green(`✔ Created ${name}`)}\n${formatIdentity(result.identifiers, "  ")}`);
}
