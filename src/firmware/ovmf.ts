/**
 * OVMF (edk2 UEFI for x86_64): find the firmware code + NVRAM template, and
 * give each VM its own NVRAM (`uefi-seed.fd` = pristine copy of the template,
 * `uefi-instance.fd` = the copy the VM writes to; resetting the UEFI
 * variables replaces the instance with a fresh copy of the seed).
 *
 * Firmware is found the way QEMU's docs/interop/firmware.json asks management
 * software to: collect `*.json` descriptors from the descriptor directories,
 * let a more specific directory override (or, with a zero-length file, hide) a
 * same-named file of a less specific one, sort by file name, take the first
 * match. On Debian 12 (package `ovmf`) this gives:
 *
 *   - uefi        → 60-edk2-x86_64.json: OVMF_CODE_4M.fd + OVMF_VARS_4M.fd
 *   - uefi-secure → 40-edk2-x86_64-secure-enrolled.json:
 *                   OVMF_CODE_4M.ms.fd (→ .secboot.fd) + OVMF_VARS_4M.ms.fd
 *
 * (50-edk2-x86_64-secure.json is Secure Boot code with an *empty* varstore:
 * no keys enrolled, so Secure Boot would be off; it matches neither kind.)
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import * as z from "zod";
import { GlintError, MissingToolError, UsageError } from "../errors.js";
import { type PreparedChange, preparedChange } from "../txn/change.js";
import { copyFileAtomic, copyToTemp, renameIntoPlace } from "../vm/atomic.js";
import { isFile } from "../vm/fsutil.js";

// ---------------------------------------------------------------------------
// Descriptor schema (QEMU docs/interop/firmware.json)
// ---------------------------------------------------------------------------

const flashFileSchema = z.looseObject({
  filename: z.string().min(1),
  /** A BlockdevDriver name, e.g. "raw" or "qcow2". */
  format: z.string().min(1),
});

const flashMappingSchema = z.looseObject({
  device: z.literal("flash"),
  /** Since QEMU 7.2/8.1; absent means "split". */
  mode: z.enum(["split", "combined", "stateless"]).optional(),
  executable: flashFileSchema,
  /** Required in split mode, absent in combined/stateless mode. */
  "nvram-template": flashFileSchema.optional(),
});

const kernelOrMemoryMappingSchema = z.looseObject({
  device: z.enum(["kernel", "memory"]),
  filename: z.string().min(1),
});

/** One `<dir>/NN-name.json` firmware descriptor. Unknown keys are tolerated. */
export const firmwareDescriptorSchema = z.looseObject({
  description: z.string().optional(),
  "interface-types": z.array(z.string()),
  mapping: z.discriminatedUnion("device", [flashMappingSchema, kernelOrMemoryMappingSchema]),
  targets: z.array(
    z.looseObject({
      architecture: z.string(),
      machines: z.array(z.string()),
    }),
  ),
  /** Known values include acpi-s3, amd-sev, enrolled-keys, requires-smm, secure-boot; unknown ones are kept. */
  features: z.array(z.string()),
  tags: z.array(z.string()).optional(),
});

export type FirmwareDescriptor = z.infer<typeof firmwareDescriptorSchema>;

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

export type UefiKind = "uefi" | "uefi-secure";

export interface ResolvedFirmware {
  /** Read-only firmware code (pflash0), raw format. */
  readonly code: string;
  /** NVRAM template (copied to pflash1), raw format. Never map it directly. */
  readonly varsTemplate: string;
  /** True for uefi-secure: Secure Boot code with keys enrolled in the template. */
  readonly secureBoot: boolean;
  /**
   * The code needs SMM emulation (`-machine smm=on` and, with Secure Boot,
   * `-global driver=cfi.pflash01,property=secure,value=on`).
   */
  readonly requiresSmm: boolean;
  /** The descriptor file that was chosen, or null (fallback path or env override). */
  readonly descriptor: string | null;
}

export interface ResolveFirmwareOptions {
  /**
   * Descriptor directories, most specific (highest precedence) first.
   * Default: `$XDG_CONFIG_HOME/qemu/firmware` (or `~/.config/qemu/firmware`),
   * `/etc/qemu/firmware`, `/usr/share/qemu/firmware`.
   */
  descriptorDirs?: readonly string[];
  /**
   * Directories searched for well-known OVMF file names when no descriptor
   * matches. Default: the Debian, Fedora and Arch locations.
   */
  fallbackDirs?: readonly string[];
  /** Read for GLINT_OVMF_CODE / GLINT_OVMF_VARS, XDG_CONFIG_HOME and HOME. */
  env?: NodeJS.ProcessEnv;
  /** Told about every descriptor that was skipped because it is unreadable or invalid. */
  onInvalidDescriptor?: (file: string, reason: string) => void;
}

export const DEFAULT_FALLBACK_DIRS: readonly string[] = [
  "/usr/share/OVMF",
  "/usr/share/edk2/ovmf",
  "/usr/share/edk2/x64",
  "/usr/share/edk2-ovmf/x64",
];

/** Well-known [code, vars] file name pairs, best first. */
const FALLBACK_NAMES: Record<UefiKind, ReadonlyArray<readonly [string, string]>> = {
  uefi: [
    ["OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"], // Debian/Ubuntu
    ["OVMF_CODE.4m.fd", "OVMF_VARS.4m.fd"], // Arch
    ["OVMF_CODE.fd", "OVMF_VARS.fd"], // Fedora, older Debian (2M)
  ],
  "uefi-secure": [
    ["OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"], // Debian/Ubuntu
    ["OVMF_CODE.secboot.fd", "OVMF_VARS.secboot.fd"], // Fedora (MS keys enrolled)
    ["OVMF_CODE.secboot.fd", "OVMF_VARS.ms.fd"], // older Debian (2M)
  ],
};

/** The concrete machine type Glint runs (`-machine q35` is an alias of the newest pc-q35-X.Y). */
const Q35_SAMPLE = "pc-q35-7.2";

export function defaultDescriptorDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const configHome =
    env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== ""
      ? env.XDG_CONFIG_HOME
      : env.HOME !== undefined && env.HOME !== ""
        ? path.join(env.HOME, ".config")
        : undefined;
  return [
    ...(configHome === undefined ? [] : [path.join(configHome, "qemu", "firmware")]),
    "/etc/qemu/firmware",
    "/usr/share/qemu/firmware",
  ];
}

/**
 * Find OVMF for `kind`: GLINT_OVMF_CODE + GLINT_OVMF_VARS if set, else the
 * first matching QEMU firmware descriptor, else well-known file names.
 * Throws MissingToolError ("OVMF firmware not found: install it with
 * `apt-get install ovmf`") when nothing fits.
 */
export async function resolveFirmware(
  kind: UefiKind,
  options: ResolveFirmwareOptions = {},
): Promise<ResolvedFirmware> {
  const env = options.env ?? process.env;

  const fromEnv = await fromEnvOverride(kind, env);
  if (fromEnv !== null) return fromEnv;

  const dirs = options.descriptorDirs ?? defaultDescriptorDirs(env);
  for (const file of await listDescriptors(dirs)) {
    let descriptor: FirmwareDescriptor;
    try {
      const text = await fs.readFile(file, "utf8");
      descriptor = firmwareDescriptorSchema.parse(JSON.parse(text));
    } catch (error) {
      options.onInvalidDescriptor?.(file, describeParseError(error));
      continue;
    }
    const picked = await matchDescriptor(kind, descriptor);
    if (picked !== null) return { ...picked, descriptor: file };
  }

  for (const dir of options.fallbackDirs ?? DEFAULT_FALLBACK_DIRS) {
    for (const [codeName, varsName] of FALLBACK_NAMES[kind]) {
      const code = path.join(dir, codeName);
      const varsTemplate = path.join(dir, varsName);
      if ((await isFile(code)) && (await isFile(varsTemplate))) {
        const secureBoot = kind === "uefi-secure";
        return { code, varsTemplate, secureBoot, requiresSmm: secureBoot, descriptor: null };
      }
    }
  }

  throw new MissingToolError(
    kind === "uefi" ? "OVMF firmware" : "OVMF Secure Boot firmware",
    "ovmf",
  );
}

async function fromEnvOverride(
  kind: UefiKind,
  env: NodeJS.ProcessEnv,
): Promise<ResolvedFirmware | null> {
  const code = env.GLINT_OVMF_CODE;
  const vars = env.GLINT_OVMF_VARS;
  const hasCode = code !== undefined && code !== "";
  const hasVars = vars !== undefined && vars !== "";
  if (!hasCode && !hasVars) return null;
  if (!hasCode || !hasVars) {
    throw new UsageError(
      `GLINT_OVMF_CODE and GLINT_OVMF_VARS must be set together (only ${hasCode ? "GLINT_OVMF_CODE" : "GLINT_OVMF_VARS"} is set)`,
    );
  }
  for (const [name, file] of [
    ["GLINT_OVMF_CODE", code],
    ["GLINT_OVMF_VARS", vars],
  ] as const) {
    if (!(await isFile(file))) {
      throw new GlintError(`${name}=${file}: no such file`);
    }
  }
  const secureBoot = kind === "uefi-secure";
  return {
    code: path.resolve(code),
    varsTemplate: path.resolve(vars),
    secureBoot,
    requiresSmm: secureBoot,
    descriptor: null,
  };
}

/**
 * Descriptor files in QEMU's order: union of all dirs' `*.json`, where the
 * most specific dir wins a name clash and a zero-length file hides the name;
 * sorted by file name.
 */
async function listDescriptors(dirsMostSpecificFirst: readonly string[]): Promise<string[]> {
  const chosen = new Map<string, string | null>();
  for (const dir of dirsMostSpecificFirst) {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      continue; // missing or unreadable directory: nothing from here
    }
    for (const name of names) {
      if (!name.endsWith(".json") || chosen.has(name)) continue;
      const file = path.join(dir, name);
      let size: number;
      try {
        const st = await fs.stat(file);
        if (!st.isFile()) continue;
        size = st.size;
      } catch {
        continue;
      }
      chosen.set(name, size === 0 ? null : file);
    }
  }
  return [...chosen.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .flatMap(([, file]) => (file === null ? [] : [file]));
}

async function matchDescriptor(
  kind: UefiKind,
  d: FirmwareDescriptor,
): Promise<Omit<ResolvedFirmware, "descriptor"> | null> {
  if (!d["interface-types"].includes("uefi")) return null;
  const mapping = d.mapping;
  if (mapping.device !== "flash") return null;
  if ((mapping.mode ?? "split") !== "split") return null;
  const template = mapping["nvram-template"];
  if (template === undefined) return null;
  // Glint maps both files with format=raw and copies the template byte for byte.
  if (mapping.executable.format !== "raw" || template.format !== "raw") return null;
  const runsOnQ35 = d.targets.some(
    (t) =>
      t.architecture === "x86_64" &&
      t.machines.some((m) => globMatch(m, Q35_SAMPLE) || m.startsWith("pc-q35-")),
  );
  if (!runsOnQ35) return null;

  const features = new Set(d.features);
  const secureBoot = features.has("secure-boot");
  const requiresSmm = features.has("requires-smm");
  if (kind === "uefi-secure") {
    if (!secureBoot || !features.has("enrolled-keys") || !requiresSmm) return null;
  } else if (secureBoot) {
    return null;
  }

  const code = mapping.executable.filename;
  const varsTemplate = template.filename;
  if (!path.isAbsolute(code) || !path.isAbsolute(varsTemplate)) return null;
  if (!(await isFile(code)) || !(await isFile(varsTemplate))) return null;
  return { code, varsTemplate, secureBoot, requiresSmm };
}

/** fnmatch(3)-style glob (`*`, `?`, `[...]`) as used in descriptor machine lists. */
export function globMatch(pattern: string, text: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end === -1) {
        re += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, end);
      if (body.startsWith("!")) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  try {
    return new RegExp(`${re}$`).test(text);
  } catch {
    return false;
  }
}

function describeParseError(error: unknown): string {
  if (error instanceof z.ZodError) {
    return error.issues
      .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`)
      .join("; ");
  }
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------
// Per-VM NVRAM
// ---------------------------------------------------------------------------

/**
 * Give a VM its own NVRAM: copy `fw.varsTemplate` to `seedPath` (pristine
 * copy) and then to `instancePath` (the VM's writable copy), each atomically.
 */
export async function installUefiVars(
  fw: ResolvedFirmware,
  seedPath: string,
  instancePath: string,
): Promise<void> {
  // The template is a system file (often a symlink to the real one): followed.
  await copyFileAtomic(fw.varsTemplate, seedPath, { followSymlinks: true });
  await copyFileAtomic(seedPath, instancePath);
}

/** Atomically replace `instancePath` with a fresh copy of `seedPath`. */
export async function resetUefiVariables(seedPath: string, instancePath: string): Promise<void> {
  await assertSeed(seedPath);
  await copyFileAtomic(seedPath, instancePath);
}

/**
 * Two-phase UEFI variable reset for transactions: copies the seed to a temp
 * file next to the instance and fsyncs it; `commit()` renames it over the
 * instance and fsyncs the directory; `abort()` deletes the temp file. The temp
 * name matches `removeStaleTemps` (src/vm/atomic.ts), so a killed process's
 * leftover is cleaned up later.
 */
export async function prepareUefiReset(
  seedPath: string,
  instancePath: string,
): Promise<PreparedChange> {
  await assertSeed(seedPath);
  const tmp = await copyToTemp(seedPath, instancePath);
  return preparedChange({
    what: "UEFI variable reset",
    commit: () => renameIntoPlace(tmp, instancePath),
    abort: () => fs.rm(tmp, { force: true }),
  });
}

async function assertSeed(seedPath: string): Promise<void> {
  if (!(await isFile(seedPath))) {
    throw new GlintError(
      `UEFI seed NVRAM ${seedPath} is missing: cannot reset the UEFI variables (recreate the VM, or copy the OVMF VARS template there)`,
    );
  }
}
