/**
 * Offline re-identification: apply a VM's identity to a qcow2 or raw disk
 * image without booting it, mounting it or using loop devices.
 *
 *     const report = await sysprepImage("vm.qcow2", { vmName, identifiers }, { dryRun: false });
 *
 * All or nothing: the work happens on a temp copy renamed over the image at
 * the end. See mapping.ts for what goes where.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { machineId, uuidV4 } from "../identity/formats.js";
import { rethrowNamed } from "./errors.js";
import { applyEdits, setExtUuid } from "./ext4.js";
import { ImageExport } from "./fuse-export.js";
import { writeGptGuids } from "./gpt.js";
import { hostnameFor } from "./guest-files.js";
import { cleanStale, commitTempCopy, detectFormat, makeTempCopy, makeWorkDir } from "./image.js";
import { type DiskLayout, type Part, readLayout } from "./layout.js";
import { luksSetUuid } from "./luks.js";
import { mbrSignatureBytes } from "./mbr.js";
import { type Prepared, prepare, rootKeyEdits } from "./prepare.js";
import { writeAt } from "./probe.js";
import type { SysprepInput, SysprepOptions, SysprepReport } from "./report.js";
import { KeyFactory } from "./ssh-keys.js";
import { setSwapUuid } from "./swap.js";
import { setVfatId, writeVfatFile } from "./vfat.js";
import { setXfsUuid } from "./xfs.js";

export { type ImageInspection, inspectImage } from "./inspect.js";
export { SYSPREP_MAPPING, sysprepMappingMarkdown } from "./mapping.js";
export type * from "./report.js";
export { formatReport } from "./report.js";

function validate(input: SysprepInput): void {
  const id = input.identifiers;
  for (const f of [
    "disk_uuid",
    "partition_uuid",
    "filesystem_uuid",
    "boot_uuid",
    "swap_uuid",
  ] as const) {
    if (
      !uuidV4.safeParse(id[f]).success &&
      !/^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/.test(id[f])
    ) {
      throw new GlintError(`sysprep: identifier ${f} is not a UUID: ${JSON.stringify(id[f])}`, {
        code: "usage",
      });
    }
  }
  if (!machineId.safeParse(id.machine_id).success) {
    throw new GlintError(
      `sysprep: machine_id is not 32 lowercase hex digits: ${JSON.stringify(id.machine_id)}`,
      { code: "usage" },
    );
  }
  const rec = input.appliedRecord;
  if (rec !== undefined && (rec.length > 4096 || /[^\n\x20-\x7e]/.test(rec))) {
    throw new GlintError("sysprep: the applied record must be printable ASCII, at most 4 KiB", {
      code: "usage",
    });
  }
}

/** Write one partition's changes (a writable export of it, then removed). */
async function writePart(
  part: Part,
  p: Prepared,
  ex: ImageExport,
  o: { workDir: string; env?: NodeJS.ProcessEnv },
  progress: (m: string) => void,
): Promise<void> {
  const env = o.env;
  const fsChange = p.plan.changes.find((c) => c.part === part.number && c.kind !== "partuuid");
  const extEdits = p.extEdits.get(part.number)?.edits ?? [];
  const vfatEdits = p.vfatEdits.get(part.number) ?? [];
  const isRoot = part.number === p.root.number;
  if (!isRoot && !fsChange && extEdits.length === 0 && vfatEdits.length === 0) return;
  progress(`writing partition ${part.number}`);
  const file = await ex.addPartition(part.number, part.start, part.size, true);
  switch (part.fs.type) {
    case "ext": {
      // The UUID first: the root's SSH host keys may still be being drawn.
      if (fsChange)
        await setExtUuid(file, fsChange.new, part.fs.metadataCsum && !part.fs.csumSeed, env);
      const keyEdits = isRoot ? await rootKeyEdits(p) : [];
      await applyEdits(file, [...extEdits, ...keyEdits], o);
      break;
    }
    case "vfat":
      for (const f of vfatEdits) await writeVfatFile(file, f.path, f.data, o.workDir, env);
      if (fsChange) await setVfatId(file, fsChange.new);
      break;
    case "swap":
      if (fsChange) await setSwapUuid(file, fsChange.new);
      break;
    case "xfs":
      if (fsChange) await setXfsUuid(file, fsChange.new, env);
      break;
    case "luks":
      if (fsChange) await luksSetUuid(file, fsChange.new, env);
      break;
    default:
      break;
  }
  await ex.removePartition(part.number, true);
}

/**
 * Write everything, the root filesystem last (after the partition table):
 * its SSH host keys are the slowest thing to make, so every other write
 * happens while they are drawn.
 */
async function apply(
  p: Prepared,
  layout: DiskLayout,
  ex: ImageExport,
  workDir: string,
  env: NodeJS.ProcessEnv | undefined,
  progress: (m: string) => void,
): Promise<void> {
  const o = { workDir, ...(env ? { env } : {}) };
  // One writable partition at a time (see ImageExport.addPartition).
  await ex.removeAllPartitions();
  for (const part of layout.parts) {
    if (part.number !== p.root.number) await writePart(part, p, ex, o, progress);
  }
  const disk0 = p.plan.changes.filter((c) => c.part === 0);
  const partuuids = new Map(
    p.plan.changes.filter((c) => c.kind === "partuuid").map((c) => [c.part, c.new]),
  );
  const diskGuid = disk0.find((c) => c.kind === "gpt-disk-guid")?.new;
  const sig = disk0.find((c) => c.kind === "mbr-disk-signature")?.new;
  if (diskGuid !== undefined || partuuids.size > 0 || sig !== undefined) {
    progress("writing the partition table");
    const disk = await ex.writableDisk((await fs.stat(ex.diskPath)).size);
    if (layout.table === "gpt") await writeGptGuids(disk, diskGuid, partuuids);
    else if (layout.table === "mbr" && sig !== undefined)
      await writeAt(disk, 440, mbrSignatureBytes(sig));
    await ex.removeWritableDisk();
  }
  await writePart(p.root, p, ex, o, progress);
}

/**
 * Apply `input`'s identity to `image` (qcow2 or raw) in place, or with
 * `dryRun` only report what would change. A blank disk, or one without an ext
 * root filesystem, gives status "skipped" and changes nothing.
 */
export async function sysprepImage(
  image: string,
  input: SysprepInput,
  options: SysprepOptions = {},
): Promise<SysprepReport> {
  const t0 = performance.now();
  const env = options.env;
  const progress = options.onProgress ?? (() => {});
  validate(input);
  const hostname = input.hostname ?? hostnameFor(input.vmName);
  const abs = path.resolve(image);
  const st = await fs.lstat(abs).catch(() => undefined);
  if (!st)
    throw new GlintError(`${image}: no such file`, { code: "not-found", details: { file: image } });
  if (!st.isFile())
    throw new GlintError(
      `${image}: not a regular file${st.isSymbolicLink() ? " (a symlink is never followed)" : ""}`,
      { code: "invalid-file", details: { file: image } },
    );
  const format = await detectFormat(abs);
  const dryRun = options.dryRun === true;
  if (!dryRun) await cleanStale(abs, env);
  const workDir = await makeWorkDir();
  const keys = dryRun
    ? undefined
    : new KeyFactory(path.join(workDir, "keys"), `root@${hostname}`, env);
  keys?.start(["rsa", "ecdsa", "ed25519"]);
  let tmp: string | undefined;
  let ex: ImageExport | undefined;
  let committed = false;
  try {
    tmp = dryRun ? undefined : await makeTempCopy(abs, env);
    progress(`opening ${image}`);
    ex = await ImageExport.start(tmp ?? abs, workDir, {
      format,
      readOnly: dryRun,
      displayName: image,
      ...(tmp !== undefined && format === "qcow2" ? { lockCheck: abs } : {}),
      ...(env ? { env } : {}),
    });
    const layout = await readLayout(ex).catch((e: unknown) => rethrowNamed(e, image));
    const outcome = await prepare({
      layout,
      identity: input.identifiers,
      hostname,
      ...(input.previousMap ? { previousMap: input.previousMap } : {}),
      ...(input.appliedRecord !== undefined ? { appliedRecord: input.appliedRecord } : {}),
      keys,
      debugfs: { workDir, ...(env ? { env } : {}) },
      ...(env ? { env } : {}),
    }).catch((e: unknown) => rethrowNamed(e, image));
    const base = { image: abs, format, partitionTable: layout.table } as const;
    if ("skipped" in outcome) {
      await ex.stop();
      return {
        ...base,
        status: "skipped",
        changes: [],
        files: [],
        skipped: [{ object: "image", reason: outcome.skipped }],
        notes: [],
        freshValues: {},
        durationMs: performance.now() - t0,
      };
    }
    const p = outcome.prepared;
    if (!dryRun) {
      progress("writing");
      await apply(p, layout, ex, workDir, env, progress);
    }
    progress("closing the image");
    await ex.stop();
    progress("committing");
    if (tmp !== undefined) {
      await commitTempCopy(tmp, abs);
      committed = true;
    }
    return {
      ...base,
      status: dryRun ? "planned" : "applied",
      changes: [...p.plan.changes.map(({ part: _part, ...c }) => c), ...p.result.changes],
      files: p.result.files,
      skipped: [...p.plan.skipped, ...p.result.skipped],
      notes: p.notes,
      freshValues: p.plan.freshValues,
      durationMs: performance.now() - t0,
    };
  } finally {
    await ex?.stop().catch(() => undefined);
    await keys?.settle();
    if (tmp !== undefined && !committed) await fs.rm(tmp, { force: true });
    await fs.rm(workDir, { recursive: true, force: true });
  }
}
