/**
 * From a disk layout to everything sysprep will do: scan the ext
 * filesystems, find the root, plan the identifiers, and build the file edits
 * of every filesystem. Nothing is written here.
 */
import { randomBytes } from "node:crypto";
import { GlintError } from "../errors.js";
import type { DebugfsOptions } from "./ext4.js";
import { type EditResult, osEdits, referenceEdits } from "./guest-edits.js";
import { type FstabEntry, parseFstab, rewriteReferences } from "./guest-files.js";
import { type DiskLayout, type Part, partLabel } from "./layout.js";
import { findPart, makePlan, type Plan } from "./plan.js";
import type { SysprepIdentity } from "./report.js";
import { type ExtScan, hasFstab, scanExt } from "./scan.js";
import type { KeyFactory } from "./ssh-keys.js";
import { listVfatFiles, readVfatFile } from "./vfat.js";

export interface VfatFileEdit {
  readonly path: string;
  readonly data: Buffer;
}

export interface Prepared {
  readonly plan: Plan;
  readonly root: Part;
  /** Edits per ext partition number. */
  readonly extEdits: ReadonlyMap<number, EditResult>;
  /** File rewrites per vfat partition number. */
  readonly vfatEdits: ReadonlyMap<number, VfatFileEdit[]>;
  readonly result: EditResult;
  readonly notes: string[];
}

export interface PrepareInput {
  readonly layout: DiskLayout;
  readonly identity: SysprepIdentity;
  readonly hostname: string;
  readonly previousMap?: Readonly<Record<string, string>>;
  readonly appliedRecord?: string;
  readonly keys: KeyFactory | undefined;
  readonly debugfs: DebugfsOptions;
  readonly env?: NodeJS.ProcessEnv;
}

/** Why nothing can be done, or the prepared work. */
export type PrepareOutcome = { readonly skipped: string } | { readonly prepared: Prepared };

const VFAT_REF_RE =
  /^(\/EFI\/[^/]+\/grub\.cfg|\/grub2?\/grub\.cfg|\/loader\/entries\/[^/]+\.conf)$/i;

function describeFound(layout: DiskLayout): string {
  if (layout.table === "none") {
    const w = layout.wholeDisk?.type ?? "empty";
    return w === "empty"
      ? "a blank disk (no partition table)"
      : `no partition table (whole disk: ${w})`;
  }
  if (layout.parts.length === 0) return `an empty ${layout.table.toUpperCase()} partition table`;
  return `${layout.table.toUpperCase()} with ${layout.parts.map((p) => `${p.number}: ${p.fs.type}`).join(", ")}`;
}

export async function prepare(input: PrepareInput): Promise<PrepareOutcome> {
  const { layout } = input;
  if (layout.table === "none" || layout.parts.length === 0) {
    return { skipped: `nothing to re-identify: found ${describeFound(layout)}` };
  }
  for (const p of layout.parts) {
    if (p.fs.type === "ext" && p.fs.damage !== undefined) {
      throw new GlintError(`${partLabel(p)}: ${p.fs.damage}; run e2fsck on it before sysprep`, {
        code: "invalid-file",
      });
    }
  }
  const extParts = layout.parts.filter((p) => p.fs.type === "ext");
  const scans = new Map<number, ExtScan>();
  await Promise.all(
    extParts.map(async (p) => {
      scans.set(p.number, await scanExt(p, input.debugfs));
    }),
  );
  const withFstab = extParts.filter((p) => hasFstab(scans.get(p.number) as ExtScan));
  const fstabOf = (p: Part): FstabEntry[] =>
    parseFstab(scans.get(p.number)?.files.get("/etc/fstab")?.toString("utf8") ?? "");
  const root =
    withFstab.find((p) =>
      fstabOf(p).some((e) => e.mountpoint === "/" && findPart(layout, e.spec)?.number === p.number),
    ) ?? withFstab[0];
  if (root === undefined) {
    return {
      skipped: `no ext2/3/4 root filesystem with /etc/fstab found (${describeFound(layout)}); identifiers left unchanged because references to them could not be rewritten`,
    };
  }
  const fstab = fstabOf(root);
  const plan = makePlan({
    layout,
    root,
    fstab,
    identity: input.identity,
    ...(input.previousMap ? { previousMap: input.previousMap } : {}),
    random: (n) => randomBytes(n),
  });
  const where = (p: Part) => {
    const r = plan.roles.get(p.number);
    return partLabel(p, r === "other" ? undefined : r === "esp" ? "EFI system partition" : r);
  };
  const result: EditResult = { edits: [], files: [], changes: [], skipped: [] };
  const extEdits = new Map<number, EditResult>();
  for (const p of extParts) {
    const scan = scans.get(p.number) as ExtScan;
    const out: EditResult = { edits: [], files: [], changes: [], skipped: [] };
    referenceEdits(scan, plan.subs, where(p), out);
    if (p === root) {
      await osEdits(
        {
          scan,
          where: where(p),
          machineId: input.identity.machine_id,
          hostname: input.hostname,
          keys: input.keys,
          ...(input.appliedRecord !== undefined ? { appliedRecord: input.appliedRecord } : {}),
        },
        out,
      );
    }
    extEdits.set(p.number, out);
    result.files.push(...out.files);
    result.changes.push(...out.changes);
    result.skipped.push(...out.skipped);
  }
  const vfatEdits = new Map<number, VfatFileEdit[]>();
  await Promise.all(
    layout.parts
      .filter((p) => p.fs.type === "vfat")
      .map(async (p) => {
        const files = (await listVfatFiles(p.file, input.env)).filter((f) => VFAT_REF_RE.test(f));
        const edits: VfatFileEdit[] = [];
        for (const f of files) {
          const data = await readVfatFile(p.file, f, input.env);
          const r = rewriteReferences(data.toString("utf8"), plan.subs);
          if (r.count === 0) continue;
          edits.push({ path: f, data: Buffer.from(r.text, "utf8") });
          result.files.push({
            filesystem: where(p),
            path: f,
            action: "rewritten",
            detail: `${r.count} reference${r.count === 1 ? "" : "s"}`,
          });
        }
        vfatEdits.set(p.number, edits);
      }),
  );
  const notes: string[] = [];
  const touchedBootConfig = result.files.some((f) => /resume|crypttab/.test(f.path));
  const initrds = [...scans.values()].flatMap((s) =>
    [...(s.dirs.get("/boot") ?? []), ...(s.part !== root ? (s.dirs.get("/") ?? []) : [])]
      .filter((e) => /^initrd\.img-|^initramfs-/.test(e.name))
      .map((e) => e.name),
  );
  if (touchedBootConfig && initrds.length > 0) {
    notes.push(
      `the initramfs (${initrds.join(", ")}) embeds copies of the resume and crypttab settings with the old UUIDs; it cannot be rebuilt offline — run update-initramfs -u (or dracut -f) in the guest`,
    );
  }
  if (!plan.roles.has(root.number)) throw new GlintError("internal: root has no role");
  const hasBoot = [...plan.roles.values()].some((r) => r === "/boot" || r === "esp");
  if (!hasBoot)
    result.skipped.push({
      object: "boot_uuid",
      reason: "no /boot filesystem and no EFI system partition",
    });
  if (![...plan.roles.values()].includes("swap"))
    result.skipped.push({ object: "swap_uuid", reason: "no swap partition" });
  return { prepared: { plan, root, extEdits, vfatEdits, result, notes } };
}
