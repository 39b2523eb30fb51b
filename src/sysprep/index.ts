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
import { apply } from "./apply.js";
import { rethrowNamed } from "./errors.js";
import { ImageExport } from "./fuse-export.js";
import { hostnameFor } from "./guest-files.js";
import {
  cleanStale,
  commitTempCopy,
  detectFormat,
  flushEarly,
  makeTempCopy,
  makeWorkDir,
} from "./image.js";
import { readLayout } from "./layout.js";
import { prepare } from "./prepare.js";
import type { SysprepInput, SysprepOptions, SysprepReport } from "./report.js";
import { KeyFactory } from "./ssh-keys.js";

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
  let flushed: Promise<void> | undefined;
  try {
    tmp = dryRun ? undefined : await makeTempCopy(abs, env);
    // The copy's bulk reaches the disk while the image is read and written;
    // the one flush at the commit then has little left to write.
    flushed = tmp === undefined ? undefined : flushEarly(tmp, env);
    flushed?.catch(() => undefined); // awaited before the commit
    progress(`opening ${image}`);
    ex = await ImageExport.start(tmp ?? abs, workDir, {
      format,
      readOnly: dryRun,
      displayName: image,
      ...(tmp !== undefined && format === "qcow2" ? { lockCheck: abs } : {}),
      ...(env ? { env } : {}),
    });
    const diskPath = ex.diskPath;
    const layout = await readLayout(diskPath, (await fs.stat(diskPath)).size).catch((e: unknown) =>
      rethrowNamed(e, image),
    );
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
      await apply(p, layout, ex, { workDir, ...(env ? { env } : {}) }, progress);
    }
    progress("closing the image");
    await ex.stop();
    if (!dryRun && !ex.cleanExit) {
      throw new GlintError(`qemu-storage-daemon did not close ${image} cleanly: ${ex.log.trim()}`, {
        code: "tool-failed",
      });
    }
    progress("committing");
    if (tmp !== undefined) {
      await flushed;
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
    await flushed?.catch(() => undefined);
    if (tmp !== undefined && !committed) await fs.rm(tmp, { force: true });
    await fs.rm(workDir, { recursive: true, force: true });
  }
}
