/**
 * Read an image's identity back, offline and read-only: disk GUID (or MBR
 * signature), PARTUUIDs, filesystem UUIDs and vfat IDs, and from the root
 * filesystem the machine-id, hostname and SSH host key fingerprints.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { rethrowNamed } from "./errors.js";
import { isReg, listDirs, readFiles } from "./ext4.js";
import { ImageExport } from "./fuse-export.js";
import { detectFormat, makeWorkDir } from "./image.js";
import { extDevice, readLayout } from "./layout.js";
import { entryOf } from "./scan.js";
import { fingerprint, hostKeyType } from "./ssh-keys.js";

export interface InspectedPartition {
  readonly number: number;
  readonly partuuid: string;
  readonly type: string;
  /** Filesystem UUID, vfat volume ID or LUKS UUID, when there is one. */
  readonly uuid?: string;
  readonly label?: string;
}

export interface ImageInspection {
  readonly format: "qcow2" | "raw";
  readonly partitionTable: "gpt" | "mbr" | "none";
  readonly diskGuid?: string;
  readonly mbrSignature?: string;
  readonly partitions: readonly InspectedPartition[];
  /** Partition number of the ext filesystem holding /etc (the first with /etc/fstab). */
  readonly rootPartition?: number;
  readonly machineId?: string;
  readonly hostname?: string;
  /** SSH host key type → `SHA256:…` fingerprint. */
  readonly sshHostKeys: Readonly<Record<string, string>>;
}

export async function inspectImage(
  image: string,
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<ImageInspection> {
  const abs = path.resolve(image);
  const st = await fs.lstat(abs).catch(() => undefined);
  if (!st?.isFile()) throw new GlintError(`${image}: not a regular file`);
  const format = await detectFormat(abs);
  const workDir = await makeWorkDir();
  const env = options.env;
  const o = { workDir, ...(env ? { env } : {}) };
  let ex: ImageExport | undefined;
  try {
    ex = await ImageExport.start(abs, workDir, { format, readOnly: true, ...(env ? { env } : {}) });
    const layout = await readLayout(ex.diskPath, (await fs.stat(ex.diskPath)).size).catch(
      (e: unknown) => rethrowNamed(e, image),
    );
    const partitions: InspectedPartition[] = layout.parts.map((p) => {
      const f = p.fs;
      const uuid = f.type === "vfat" ? f.id : "uuid" in f ? f.uuid : undefined;
      const label = "label" in f && f.label !== "" ? f.label : undefined;
      return {
        number: p.number,
        partuuid: p.partuuid,
        type: f.type,
        ...(uuid === undefined ? {} : { uuid }),
        ...(label === undefined ? {} : { label }),
      };
    });
    let root: number | undefined;
    let machineId: string | undefined;
    let hostname: string | undefined;
    const sshHostKeys: Record<string, string> = {};
    for (const p of layout.parts) {
      if (p.fs.type !== "ext" || p.fs.damage !== undefined) continue;
      const dirs = await listDirs(extDevice(p), ["/etc", "/etc/ssh"], o);
      const fstab = entryOf({ dirs }, "/etc/fstab");
      if (!fstab || !isReg(fstab)) continue;
      root = p.number;
      const pubs = (dirs.get("/etc/ssh") ?? [])
        .filter((e) => isReg(e) && e.name.endsWith(".pub") && hostKeyType(e.name.slice(0, -4)))
        .map((e) => `/etc/ssh/${e.name}`);
      const wanted = ["/etc/machine-id", "/etc/hostname"].filter((f) => {
        const e = entryOf({ dirs }, f);
        return e !== undefined && isReg(e);
      });
      const files = await readFiles(extDevice(p), [...wanted, ...pubs], o);
      machineId = files.get("/etc/machine-id")?.toString("utf8").trim();
      hostname = files.get("/etc/hostname")?.toString("utf8").trim();
      for (const pub of pubs) {
        const fp = fingerprint(files.get(pub)?.toString("utf8") ?? "");
        const t = hostKeyType(path.posix.basename(pub).slice(0, -4));
        if (fp && t) sshHostKeys[t] = fp;
      }
      break;
    }
    return {
      format,
      partitionTable: layout.table,
      ...(layout.diskGuid ? { diskGuid: layout.diskGuid } : {}),
      ...(layout.mbrSignature ? { mbrSignature: layout.mbrSignature } : {}),
      partitions,
      ...(root === undefined ? {} : { rootPartition: root }),
      ...(machineId === undefined ? {} : { machineId }),
      ...(hostname === undefined ? {} : { hostname }),
      sshHostKeys,
    };
  } finally {
    await ex?.stop().catch(() => undefined);
    await fs.rm(workDir, { recursive: true, force: true });
  }
}
