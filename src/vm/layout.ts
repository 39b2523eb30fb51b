/**
 * Every on-disk name Glint uses, in one place (like lima's filenames.go). No
 * other module builds a path inside a home or VM directory by hand.
 *
 * The VM layout is the seed prototype's, plus `history/`, `tpm/`,
 * `seed.iso` and `shared/identity.env`:
 *
 *     <home>/<vm>/identifiers.json
 *     <home>/<vm>/config.json
 *     <home>/<vm>/base.qcow2
 *     <home>/<vm>/overlay.qcow2
 *     <home>/<vm>/uefi-seed.fd
 *     <home>/<vm>/uefi-instance.fd
 *     <home>/<vm>/shared/set_identifiers.sh
 *     <home>/<vm>/shared/identity.env
 *     <home>/<vm>/history/
 *     <home>/<vm>/tpm/
 *     <home>/<vm>/seed.iso
 *     <home>/<vm>/config-drive.iso      (cloud "openstack" instead of seed.iso)
 *
 * Store-wide state lives in `<home>/.glint/` (VM locks in `.glint/vms/`, so
 * that no VM name can collide with the store lock), outside the VM
 * directories.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { UsageError } from "../errors.js";
import { VM_NAME_RE } from "../identity/formats.js";

export const DEFAULT_HOME = "./vms_linux";

/**
 * `--home`, else `$GLINT_HOME`, else `./vms_linux`, as an absolute path. An
 * empty value is a UsageError: it would silently mean the current directory.
 */
export function resolveHome(home?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (home === "") {
    throw new UsageError("--home is empty: give the VM home directory, e.g. --home ./vms_linux");
  }
  if (home === undefined && env.GLINT_HOME === "") {
    throw new UsageError(
      "GLINT_HOME is set but empty: set it to the VM home directory, or unset it to use ./vms_linux",
    );
  }
  return path.resolve(home ?? env.GLINT_HOME ?? DEFAULT_HOME);
}

/** Throws a UsageError unless `name` is a valid VM name (a valid hostname label). */
export function assertVmName(name: string): void {
  if (!VM_NAME_RE.test(name)) {
    const shown = name.length > 40 ? `${name.slice(0, 40)}… (${name.length} characters)` : name;
    throw new UsageError(
      `invalid VM name ${JSON.stringify(shown)}: use 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes the hostname)`,
      { reason: "vm-name" },
    );
  }
}

/** File names inside a VM directory. */
export const VM_FILES = {
  identifiers: "identifiers.json",
  config: "config.json",
  base: "base.qcow2",
  overlay: "overlay.qcow2",
  uefiSeed: "uefi-seed.fd",
  uefiInstance: "uefi-instance.fd",
  shared: "shared",
  script: "set_identifiers.sh",
  identityEnv: "identity.env",
  history: "history",
  tpm: "tpm",
  seedIso: "seed.iso",
  configDrive: "config-drive.iso",
  journal: ".pending.json",
  creating: ".creating",
  swtpmSocket: "swtpm.sock",
  qmpSocket: "qmp.sock",
  qgaSocket: "qga.sock",
  pidfile: "qemu.pid",
} as const;

export interface VmPaths {
  readonly name: string;
  readonly home: string;
  readonly dir: string;
  readonly identifiers: string;
  readonly config: string;
  readonly base: string;
  readonly overlay: string;
  readonly uefiSeed: string;
  readonly uefiInstance: string;
  readonly shared: string;
  readonly script: string;
  readonly identityEnv: string;
  readonly history: string;
  readonly tpm: string;
  readonly seedIso: string;
  /** The OpenStack config drive (label config-2) of a VM whose cloud is `openstack`. */
  readonly configDrive: string;
  /** The journal of an operation in progress (see src/txn/journal.ts). */
  readonly journal: string;
  /** Present while a `glint create` that Glint started is unfinished. */
  readonly creating: string;
  /** swtpm's control socket while the VM runs. */
  readonly swtpmSocket: string;
  /** QEMU's QMP socket while the VM runs. */
  readonly qmpSocket: string;
  /** The QEMU guest agent's channel (virtio-serial) while the VM runs. */
  readonly qgaSocket: string;
  /** QEMU's pid while the VM runs (written by QEMU's -pidfile). */
  readonly pidfile: string;
  /** The VM's lock, in the store directory. */
  readonly lock: string;
}

/** The directory of VM `name` under `home` (only it: see vmPaths). Validates the name first. */
export function vmDir(home: string, name: string): string {
  assertVmName(name);
  return path.join(home, name);
}

/** Paths of VM `name` under `home`. Validates the name first. */
export function vmPaths(home: string, name: string): VmPaths {
  assertVmName(name);
  const dir = path.join(home, name);
  const shared = path.join(dir, VM_FILES.shared);
  const inDir = (file: string) => path.join(dir, file);
  return {
    name,
    home,
    dir,
    identifiers: inDir(VM_FILES.identifiers),
    config: inDir(VM_FILES.config),
    base: inDir(VM_FILES.base),
    overlay: inDir(VM_FILES.overlay),
    uefiSeed: inDir(VM_FILES.uefiSeed),
    uefiInstance: inDir(VM_FILES.uefiInstance),
    shared,
    script: path.join(shared, VM_FILES.script),
    identityEnv: path.join(shared, VM_FILES.identityEnv),
    history: inDir(VM_FILES.history),
    tpm: inDir(VM_FILES.tpm),
    seedIso: inDir(VM_FILES.seedIso),
    configDrive: inDir(VM_FILES.configDrive),
    journal: inDir(VM_FILES.journal),
    creating: inDir(VM_FILES.creating),
    swtpmSocket: inDir(VM_FILES.swtpmSocket),
    qmpSocket: inDir(VM_FILES.qmpSocket),
    qgaSocket: inDir(VM_FILES.qgaSocket),
    pidfile: inDir(VM_FILES.pidfile),
    lock: path.join(storePaths(home).vmLocks, `${name}.lock`),
  };
}

export interface StorePaths {
  readonly dir: string;
  /** Held while values are drawn, so that concurrent creates never share one. */
  readonly lock: string;
  /** Directory of the per-VM locks. */
  readonly vmLocks: string;
  /** The per-home local CA that signs every VM's EK certificate. */
  readonly tpmCa: string;
  /** The embedded registry (SQLite) of every value issued (src/registry/). */
  readonly registryDb: string;
  /** This home's random id, telling it apart in a registry shared by several hosts. */
  readonly homeId: string;
  /** Per-home settings: registry, MAC prefix (src/registry/config.ts). */
  readonly config: string;
  /** The hash-chained audit log, one JSON record a line (src/audit/). */
  readonly audit: string;
  /** The last record's seq and hash, which anchors the log's tail. */
  readonly auditHead: string;
  /** Held while a record is appended. */
  readonly auditLock: string;
  /** Audit intents of changes in progress outside the journal (src/audit/intent.ts). */
  readonly auditPending: string;
  /** Where `glint rm --keep-history` moves VM directories. */
  readonly archive: string;
  /** The home's identity templates, `<name>.json` (src/templates/). */
  readonly templates: string;
  /** Journals (`<id>.json`) and locks (`<id>.lock`) of bulk creates in progress (src/ops/batch-create.ts). */
  readonly batches: string;
  /** Where a bulk create builds its VM directories (`<id>/<vm>/`) before renaming them into the home. */
  readonly staging: string;
}

/** Store-wide files. */
export function storePaths(home: string): StorePaths {
  const dir = path.join(home, ".glint");
  return {
    dir,
    lock: path.join(dir, "store.lock"),
    vmLocks: path.join(dir, "vms"),
    tpmCa: path.join(dir, "tpm-ca"),
    registryDb: path.join(dir, "registry.db"),
    homeId: path.join(dir, "home-id"),
    config: path.join(dir, "config.json"),
    audit: path.join(dir, "audit.jsonl"),
    auditHead: path.join(dir, "audit.head"),
    auditLock: path.join(dir, "audit.lock"),
    auditPending: path.join(dir, "audit-pending"),
    archive: path.join(dir, "archive"),
    templates: path.join(dir, "templates"),
    batches: path.join(dir, "batches"),
    staging: path.join(dir, "staging"),
  };
}

/** The TPM 2.0 state file swtpm keeps in `tpm/`. */
export const TPM2_PERMALL = "tpm2-00.permall";

/** The TPM state file of a VM (archived before a TPM reset). */
export function tpmStateFile(paths: VmPaths): string {
  return path.join(paths.tpm, TPM2_PERMALL);
}

// ---- lock files ---------------------------------------------------------

/** The temp file a lock is written to before it is linked into place. */
export function lockTempPath(lock: string, token: string): string {
  return `${lock}.${token}.new`;
}

/** The directory that serialises the takeover of a stale lock. */
export function lockTakeoverPath(lock: string): string {
  return `${lock}.takeover`;
}

// ---- temp files ---------------------------------------------------------

/** Temp files: `.<name>[.<tag>].tmp-<pid>-<8 hex>`, next to their target. */
export const TEMP_FILE_RE = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;

/** A fresh temp path next to `target` (same directory, so a rename is atomic). */
export function tempPathFor(target: string, tag?: string): string {
  const base = tag ? `${path.basename(target)}.${tag}` : path.basename(target);
  return path.join(
    path.dirname(target),
    `.${base}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

// ---- history/ -----------------------------------------------------------

/** A filesystem-safe, sortable timestamp: 2026-11-29T16-50-00.123Z */
function stamp(date = new Date()): string {
  return date.toISOString().replaceAll(":", "-");
}

/**
 * `history/<timestamp>_<label>_<name>-<6 hex>.<ext>`: sortable, never reused.
 * `label` says why, e.g. "base", "nuke" or "reset-tpm".
 */
export function historyPath(paths: VmPaths, file: string, label: string): string {
  const ext = path.extname(file);
  const base = path.basename(file, ext);
  return path.join(
    paths.history,
    `${stamp()}_${label}_${base}-${randomBytes(3).toString("hex")}${ext}`,
  );
}

/**
 * Where a privileged libvirt keeps an emulated TPM's state
 * (`<dir>/<domain uuid>/tpm2/`); `$GLINT_LIBVIRT_SWTPM_DIR` overrides it.
 */
export const LIBVIRT_SWTPM_DIR = "/var/lib/libvirt/swtpm";

/** The TPM 2.0 state directory libvirt uses for domain `uuid`. */
export function libvirtTpmStateDir(swtpmDir: string, uuid: string): string {
  return path.join(swtpmDir, uuid, "tpm2");
}

/** A copy of a libvirt domain's XML kept in history/ before `glint libvirt sync` replaces it. */
export function libvirtBackupPath(paths: VmPaths, domain: string): string {
  return path.join(
    paths.history,
    `${stamp()}_libvirt_${domain}-${randomBytes(3).toString("hex")}.xml`,
  );
}

/** Archived identities in history/. */
export const HISTORY_IDENTIFIERS_RE = /_identifiers-[0-9a-f]{6}\.json$/;

/** Archived overlays in history/. */
export const HISTORY_OVERLAY_RE = /_overlay-[0-9a-f]{6}\.qcow2$/;

/** Archived UEFI variables and TPM state in history/. */
export const HISTORY_NVRAM_RE = /_uefi-instance-[0-9a-f]{6}\.fd$/;
export const HISTORY_TPM_RE = /_tpm2-00-[0-9a-f]{6}\.permall$/;

/**
 * `history/pruned-values.json`: the values of identities that
 * `glint history prune` removed. They stay issued (the registry never gives
 * a value out twice), and the registry scan reads them from here.
 */
export const HISTORY_PRUNED = "pruned-values.json";

/** When and why a history/ entry was archived, from its name. */
export function parseHistoryName(name: string): { archivedAt: string; reason: string } {
  const [ts = "", reason = ""] = name.split("_");
  return { archivedAt: ts.replace(/T(\d{2})-(\d{2})-(\d{2})/, "T$1:$2:$3"), reason };
}

// ---- templates ----------------------------------------------------------

/** Template names: like VM names (1–63 lowercase letters, digits and '-'). */
export const TEMPLATE_NAME_RE = VM_NAME_RE;

/** `<home>/.glint/templates/<name>.json`; validates the name first. */
export function templatePath(home: string, name: string): string {
  if (!TEMPLATE_NAME_RE.test(name)) {
    const shown = name.length > 40 ? `${name.slice(0, 40)}…` : name;
    throw new UsageError(
      `invalid template name ${JSON.stringify(shown)}: use 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
      { reason: "template-name" },
    );
  }
  return path.join(storePaths(home).templates, `${name}.json`);
}

/** The predefined templates shipped in the package: `assets/templates/<name>.json`. */
export const BUILTIN_TEMPLATES_DIR = "assets/templates";
