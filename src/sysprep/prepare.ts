/**
 * From a disk layout to everything sysprep will do: scan the ext
 * filesystems, find the root, plan the identifiers, and build the file edits
 * of every filesystem. Nothing is written here.
 */
import { randomBytes } from "node:crypto";
import { GlintError } from "../errors.js";
import type { DebugfsOptions, ExtEdit } from "./ext4.js";
import { type EditResult, osEdits, referenceEdits, sshEdits } from "./guest-edits.js";
import { type FstabEntry, parseFstab, rewriteReferences } from "./guest-files.js";
import { type DiskLayout, fatImage, type Part, partLabel } from "./layout.js";
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
  /**
   * The root's SSH host key edits, ready once the keys are generated: applied
   * last, so everything else is written while the keys are being drawn.
   * Settled (never rejects); see rootKeyEdits().
   */
  readonly keyEdits: Promise<{ ok: EditResult } | { error: unknown }>;
}

/**
 * Wait for the root's SSH host key edits and merge them into the root's
 * edits and the result.
 */
export async function rootKeyEdits(p: Prepared): Promise<readonly ExtEdit[]> {
  const r = await p.keyEdits;
  if ("error" in r) throw r.error;
  p.result.files.push(...r.ok.files);
  p.result.changes.push(...r.ok.changes);
  p.result.skipped.push(...r.ok.skipped);
  return r.ok.edits;
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

/** The files on each vfat volume that may hold references (grub.cfg, loader entries). */
async function readVfatCandidates(
  layout: DiskLayout,
  env: NodeJS.ProcessEnv | undefined,
): Promise<[Part, [string, Buffer][]][]> {
  return Promise.all(
    layout.parts
      .filter((p) => p.fs.type === "vfat")
      .map(async (p): Promise<[Part, [string, Buffer][]]> => {
        const files = (await listVfatFiles(fatImage(p), env)).filter((f) => VFAT_REF_RE.test(f));
        const out: [string, Buffer][] = [];
        for (const f of files) out.push([f, await readVfatFile(fatImage(p), f, env)]);
        return [p, out];
      }),
  );
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
  // The ESP's candidate files are read while the ext filesystems are scanned.
  const vfatRead = readVfatCandidates(layout, input.env);
  vfatRead.catch(() => undefined); // awaited below
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
  const none: EditResult = { edits: [], files: [], changes: [], skipped: [] };
  let keyEdits: Prepared["keyEdits"] = Promise.resolve({ ok: none });
  const extEdits = new Map<number, EditResult>();
  for (const p of extParts) {
    const scan = scans.get(p.number) as ExtScan;
    const out: EditResult = { edits: [], files: [], changes: [], skipped: [] };
    referenceEdits(scan, plan.subs, where(p), out);
    if (p === root) {
      const os = {
        scan,
        where: where(p),
        machineId: input.identity.machine_id,
        hostname: input.hostname,
        keys: input.keys,
        ...(input.appliedRecord !== undefined ? { appliedRecord: input.appliedRecord } : {}),
      };
      osEdits(os, out);
      if (input.keys === undefined) {
        await sshEdits(os, out); // dry run: report entries only, nothing to wait for
      } else {
        const keyOut: EditResult = { edits: [], files: [], changes: [], skipped: [] };
        keyEdits = sshEdits(os, keyOut).then(
          () => ({ ok: keyOut }),
          (error: unknown) => ({ error }),
        );
      }
    }
    extEdits.set(p.number, out);
    result.files.push(...out.files);
    result.changes.push(...out.changes);
    result.skipped.push(...out.skipped);
  }
  const vfatEdits = new Map<number, VfatFileEdit[]>();
  for (const [part, files] of await vfatRead) {
    const edits: VfatFileEdit[] = [];
    for (const [f, data] of files) {
      const r = rewriteReferences(data.toString("utf8"), plan.subs);
      if (r.count === 0) continue;
      edits.push({ path: f, data: Buffer.from(r.text, "utf8") });
      result.files.push({
        filesystem: where(part),
        path: f,
        action: "rewritten",
        detail: `${r.count} reference${r.count === 1 ? "" : "s"}`,
      });
    }
    vfatEdits.set(part.number, edits);
  }
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
  return { prepared: { plan, root, extEdits, vfatEdits, result, notes, keyEdits } };
}
