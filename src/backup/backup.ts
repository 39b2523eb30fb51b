/**
 * `glint backup`: one archive per VM (see archive.ts) holding its
 * identifiers.json, config.json, history/, UEFI seed and instance variables,
 * TPM state, shared/ and seed.iso; with `withDisk`, its overlay and its own
 * base copy (and archived overlays in history/).
 *
 * A stopped VM is archived holding its lock. A running VM is refused unless
 * `live`: then QMP `stop` pauses its vCPUs (QEMU drains and flushes its
 * disks; no TPM command is in flight, and swtpm has written every change of
 * its permanent state), the files are archived, and QMP `cont` resumes it,
 * also when archiving failed.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { GlintError } from "../errors.js";
import { SCHEMA_VERSION } from "../identity/model.js";
import { QmpClient } from "../qemu/qmp-client.js";
import { TEMP_FILE_RE, VM_FILES, type VmPaths } from "../vm/layout.js";
import { runningQemuPid } from "../vm/running.js";
import { readConfigOrDefault } from "../vm/store.js";
import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  type Manifest,
  type Source,
  writeArchive,
} from "./archive.js";

export const GLINT_VERSION = "0.1.0";

export interface BackupOptions {
  /** Include the overlay, the VM's own base copy and archived overlays. */
  readonly withDisk?: boolean;
  /** Archive a running VM, paused through QMP meanwhile. */
  readonly live?: boolean;
}

/** Files of a VM directory never archived: locks, sockets, logs and in-progress markers. */
const SKIPPED = new Set<string>([
  VM_FILES.journal,
  VM_FILES.creating,
  VM_FILES.pidfile,
  "console.log",
  "qemu.log",
  // swtpm's lock file while it runs
  `${VM_FILES.tpm}/.lock`,
]);

const isDisk = (rel: string) => /\.qcow2$/.test(rel) || rel === VM_FILES.base;

/** The members of a VM's archive, and the links Glint made (a linked base). */
export async function collectSources(
  paths: VmPaths,
  withDisk: boolean,
): Promise<{ sources: Source[]; links: Manifest["links"] }> {
  const sources: Source[] = [];
  const links: Manifest["links"] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const rel = prefix + e.name;
      const file = path.join(dir, e.name);
      if (SKIPPED.has(rel) || TEMP_FILE_RE.test(e.name)) continue;
      if (e.isSymbolicLink()) {
        if (rel !== VM_FILES.base) {
          throw new GlintError(`${file} is a symlink Glint did not make; not archived`, {
            code: "invalid-file",
            details: { vm: paths.name, file, reason: "symlink" },
          });
        }
        if (withDisk) links.push({ path: rel, target: await fs.readlink(file) });
        continue;
      }
      if (e.isDirectory()) await walk(file, `${rel}/`);
      else if (e.isFile() && (withDisk || !isDisk(rel))) sources.push({ path: rel, file });
      // sockets, FIFOs: the running VM's, never archived
    }
  };
  await walk(paths.dir, "");
  return { sources, links };
}

/** Archive one VM to `target`; the caller holds the VM's lock, or `live` pauses it. */
export async function archiveVm(
  paths: VmPaths,
  target: string,
  options: BackupOptions,
  live: boolean,
): Promise<Manifest> {
  // A config.json that does not parse is refused before anything is written.
  await readConfigOrDefault(paths);
  if (!(await fs.stat(paths.identifiers).catch(() => undefined))) {
    throw new GlintError(`VM "${paths.name}" has no identifiers to back up`, {
      code: "not-found",
      details: { vm: paths.name, reason: "no-identifiers" },
    });
  }
  const { sources, links } = await collectSources(paths, Boolean(options.withDisk));
  return writeArchive(target, sources, {
    format: ARCHIVE_FORMAT,
    format_version: ARCHIVE_FORMAT_VERSION,
    glint_version: GLINT_VERSION,
    schema_version: SCHEMA_VERSION,
    vm: paths.name,
    created_at: new Date().toISOString(),
    live,
    with_disk: Boolean(options.withDisk),
    links,
  });
}

/** Archive a running VM: QMP stop, archive, QMP cont (always). */
export async function archiveLive(
  paths: VmPaths,
  target: string,
  options: BackupOptions,
): Promise<Manifest> {
  const qmp = await QmpClient.connect(paths.qmpSocket, 5_000).catch(() => {
    throw new GlintError(
      `VM "${paths.name}" runs without a QMP socket (${paths.qmpSocket}); start it with \`glint start\` to back it up live`,
      { code: "unsupported", details: { vm: paths.name, reason: "no-qmp" } },
    );
  });
  try {
    await qmp.execute("stop");
    try {
      return await archiveVm(paths, target, options, true);
    } finally {
      await qmp.execute("cont");
    }
  } finally {
    qmp.close();
  }
}

/** Whether the VM's QEMU runs (a backup without `live` is then refused). */
export async function isRunning(paths: VmPaths): Promise<boolean> {
  return (await runningQemuPid(paths)) !== undefined;
}

/** `<vm>-<timestamp>.glint.tar.gz`, the default archive name. */
export function archiveName(vm: string, date = new Date()): string {
  return `${vm}-${date.toISOString().replaceAll(":", "-")}.glint.tar.gz`;
}
