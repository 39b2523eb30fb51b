/**
 * Decide what each partition is (/, /boot, ESP, swap, other) from the root
 * filesystem's fstab, and which new value each identifier gets: the identity's
 * for the mapped objects, a fresh random one (or the one of an earlier run)
 * for the others. Pure: the random source is passed in.
 */
import { uuidV4FromBytes } from "../identity/model.js";
import { ESP_TYPE } from "./gpt.js";
import { type FstabEntry, parseSpec } from "./guest-files.js";
import type { DiskLayout, Part } from "./layout.js";
import { mbrPartuuid } from "./mbr.js";
import type { ObjectChange, SkippedItem, SysprepIdentity } from "./report.js";
import { vfatIdFromUuid } from "./vfat.js";

export type Role = "/" | "/boot" | "esp" | "swap" | "other";

export interface PlannedChange extends ObjectChange {
  /** Partition number, or 0 for the disk. */
  readonly part: number;
}

export interface Plan {
  readonly roles: ReadonlyMap<number, Role>;
  readonly changes: readonly PlannedChange[];
  readonly skipped: readonly SkippedItem[];
  /** old identifier → new, for rewriting references in files. */
  readonly subs: ReadonlyMap<string, string>;
  readonly freshValues: Readonly<Record<string, string>>;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const VFAT_RE = /^[0-9A-F]{4}-[0-9A-F]{4}$/;

/** The partition an fstab/crypttab spec names, if any. */
export function findPart(layout: DiskLayout, spec: string): Part | undefined {
  const ref = parseSpec(spec);
  const v = ref.value.toLowerCase();
  return layout.parts.find((p) => {
    const f = p.fs;
    switch (ref.by) {
      case "uuid":
        return (
          ("uuid" in f && f.uuid.toLowerCase() === v) ||
          (f.type === "vfat" && f.id.toLowerCase() === v)
        );
      case "partuuid":
        return p.partuuid.toLowerCase() === v;
      case "label":
        return "label" in f && f.label === ref.value;
      case "partlabel":
        return p.name === ref.value;
      case "device": {
        const m = /^\/dev\/(?:[svh]d[a-z]|xvd[a-z]|nvme\d+n\d+p|mmcblk\d+p)(\d+)$/.exec(ref.value);
        return m !== null && Number(m[1]) === p.number;
      }
    }
    return false;
  });
}

/** Roles of the partitions: / is `root`; the others come from fstab, then partition types. */
export function assignRoles(
  layout: DiskLayout,
  root: Part,
  fstab: readonly FstabEntry[],
): Map<number, Role> {
  const roles = new Map<number, Role>();
  roles.set(root.number, "/");
  for (const e of fstab) {
    const p = findPart(layout, e.spec);
    if (!p || roles.has(p.number)) continue;
    if (e.mountpoint === "/boot") roles.set(p.number, "/boot");
    else if (e.mountpoint === "/boot/efi" || e.mountpoint === "/efi") roles.set(p.number, "esp");
    else if (e.type === "swap" && p.fs.type === "swap" && ![...roles.values()].includes("swap")) {
      roles.set(p.number, "swap");
    }
  }
  const has = (r: Role) => [...roles.values()].includes(r);
  for (const p of layout.parts) {
    if (roles.has(p.number)) continue;
    const esp = p.typeGuid === ESP_TYPE || p.mbrType === 0xef;
    if (esp && p.fs.type === "vfat" && !has("esp")) roles.set(p.number, "esp");
    else if (p.fs.type === "swap" && !has("swap")) {
      roles.set(p.number, "swap");
    } else roles.set(p.number, "other");
  }
  return roles;
}

export interface PlanInput {
  readonly layout: DiskLayout;
  readonly root: Part;
  readonly fstab: readonly FstabEntry[];
  readonly identity: SysprepIdentity;
  readonly previousMap?: Readonly<Record<string, string>>;
  readonly random: (n: number) => Buffer;
}

export function makePlan(input: PlanInput): Plan {
  const { layout, root, identity } = input;
  const roles = assignRoles(layout, root, input.fstab);
  const changes: PlannedChange[] = [];
  const skipped: SkippedItem[] = [];
  const subs = new Map<string, string>();
  const fresh: Record<string, string> = {};
  const prev = input.previousMap ?? {};
  const freshUuid = (key: string): string => {
    const p = prev[key];
    const v = p !== undefined && UUID_RE.test(p) ? p : uuidV4FromBytes(input.random(16));
    fresh[key] = v;
    return v;
  };
  const freshVfat = (key: string): string => {
    const p = prev[key];
    const v =
      p !== undefined && VFAT_RE.test(p) ? p : vfatIdFromUuid(input.random(4).toString("hex"));
    fresh[key] = v;
    return v;
  };
  const add = (c: PlannedChange, reference = true) => {
    if (c.old !== null && c.old.toLowerCase() === c.new.toLowerCase()) return;
    changes.push(c);
    if (reference && c.old !== null) subs.set(c.old, c.new);
  };
  const roleName = (p: Part) => {
    const r = roles.get(p.number) ?? "other";
    return r === "other" ? undefined : r === "esp" ? "EFI system partition" : r;
  };
  const obj = (p: Part, what: string) =>
    `partition ${p.number} (${p.fs.type}${roleName(p) ? `, ${roleName(p)}` : ""}) ${what}`;

  if (layout.table === "gpt" && layout.diskGuid !== undefined) {
    add(
      {
        part: 0,
        kind: "gpt-disk-guid",
        object: "GPT disk GUID",
        source: "disk_uuid",
        old: layout.diskGuid,
        new: identity.disk_uuid,
      },
      false,
    );
  }
  if (layout.table === "mbr" && layout.mbrSignature !== undefined) {
    const sig = identity.disk_uuid.replace(/-/g, "").slice(0, 8).toLowerCase();
    add(
      {
        part: 0,
        kind: "mbr-disk-signature",
        object: "MBR disk signature",
        source: "disk_uuid (first 8 hex digits)",
        old: layout.mbrSignature,
        new: sig,
      },
      false,
    );
    if (sig !== layout.mbrSignature) {
      for (const p of layout.parts) subs.set(p.partuuid, mbrPartuuid(sig, p.number));
    }
    skipped.push({
      object: "partition_uuid",
      reason:
        "an MBR disk has no per-partition GUIDs (PARTUUID = disk signature + partition number)",
    });
  }
  for (const p of layout.parts) {
    const role = roles.get(p.number) ?? "other";
    if (layout.table === "gpt") {
      const isRoot = role === "/";
      add({
        part: p.number,
        kind: "partuuid",
        object: obj(p, "PARTUUID"),
        source: isRoot ? "partition_uuid" : "fresh",
        old: p.partuuid,
        new: isRoot ? identity.partition_uuid : freshUuid(`partition${p.number}.partuuid`),
      });
    }
    const f = p.fs;
    const mapped =
      role === "/"
        ? ["filesystem_uuid", identity.filesystem_uuid]
        : role === "/boot" || (role === "esp" && ![...roles.values()].includes("/boot"))
          ? ["boot_uuid", identity.boot_uuid]
          : role === "swap"
            ? ["swap_uuid", identity.swap_uuid]
            : undefined;
    const key = `partition${p.number}.uuid`;
    switch (f.type) {
      case "ext":
      case "xfs":
      case "swap":
      case "luks": {
        const kind =
          f.type === "ext"
            ? "ext-uuid"
            : f.type === "xfs"
              ? "xfs-uuid"
              : f.type === "swap"
                ? "swap-uuid"
                : "luks-uuid";
        const useMapped = mapped !== undefined && !(mapped[0] === "swap_uuid" && f.type !== "swap");
        add({
          part: p.number,
          kind,
          object: obj(p, f.type === "luks" ? "LUKS header UUID" : "UUID"),
          source: useMapped ? (mapped[0] as string) : "fresh",
          old: f.uuid,
          new: useMapped ? (mapped[1] as string) : freshUuid(key),
        });
        if (f.type === "luks")
          skipped.push({
            object: obj(p, "contents"),
            reason: "encrypted: only the LUKS header UUID is changed",
          });
        break;
      }
      case "vfat": {
        const useMapped = mapped !== undefined && mapped[0] === "boot_uuid";
        add({
          part: p.number,
          kind: "vfat-id",
          object: obj(p, "volume ID"),
          source: useMapped ? "boot_uuid (first 8 hex digits)" : "fresh",
          old: f.id,
          new: useMapped
            ? vfatIdFromUuid(identity.boot_uuid)
            : freshVfat(`partition${p.number}.vfat_id`),
        });
        break;
      }
      case "lvm":
        skipped.push({
          object: obj(p, "filesystem"),
          reason: "LVM physical volume: its UUIDs are not changed (LVM is not supported offline)",
        });
        break;
      case "btrfs":
        skipped.push({
          object: obj(p, "filesystem"),
          reason: "btrfs: changing its UUID rewrites every metadata block; not supported offline",
        });
        break;
      case "empty":
        break;
      case "unknown":
        skipped.push({
          object: obj(p, "filesystem"),
          reason: "unrecognised content: left unchanged",
        });
        break;
    }
  }
  for (const n of layout.extended) {
    skipped.push({
      object: `partition ${n} (extended)`,
      reason: "logical partitions of an MBR extended partition are not followed",
    });
  }
  return { roles, changes, skipped, subs, freshValues: fresh };
}
