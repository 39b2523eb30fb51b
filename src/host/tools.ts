/**
 * Host tools Glint runs, where they come from, and how to run them: always
 * execFile with an argv array, never a shell.
 */
import { execFile } from "node:child_process";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { GlintError, MissingToolError } from "../errors.js";

const execFileAsync = promisify(execFile);

export interface ToolInfo {
  /** Debian package that installs the tool. */
  readonly debianPackage: string;
  /** Environment variable that overrides the tool's path (or name on PATH). */
  readonly envVar: string;
}

/** Every host tool Glint needs: the Debian package and the override variable. */
export const TOOLS = {
  "qemu-system-x86_64": { debianPackage: "qemu-system-x86", envVar: "GLINT_QEMU" },
  "qemu-img": { debianPackage: "qemu-utils", envVar: "GLINT_QEMU_IMG" },
  swtpm: { debianPackage: "swtpm", envVar: "GLINT_SWTPM" },
  swtpm_setup: { debianPackage: "swtpm-tools", envVar: "GLINT_SWTPM_SETUP" },
  swtpm_localca: { debianPackage: "swtpm-tools", envVar: "GLINT_SWTPM_LOCALCA" },
  genisoimage: { debianPackage: "genisoimage", envVar: "GLINT_GENISOIMAGE" },
  // Offline re-identification (src/sysprep/).
  "qemu-storage-daemon": {
    debianPackage: "qemu-system-common",
    envVar: "GLINT_QEMU_STORAGE_DAEMON",
  },
  fusermount3: { debianPackage: "fuse3", envVar: "GLINT_FUSERMOUNT3" },
  debugfs: { debianPackage: "e2fsprogs", envVar: "GLINT_DEBUGFS" },
  tune2fs: { debianPackage: "e2fsprogs", envVar: "GLINT_TUNE2FS" },
  mdir: { debianPackage: "mtools", envVar: "GLINT_MDIR" },
  mtype: { debianPackage: "mtools", envVar: "GLINT_MTYPE" },
  mcopy: { debianPackage: "mtools", envVar: "GLINT_MCOPY" },
  xfs_admin: { debianPackage: "xfsprogs", envVar: "GLINT_XFS_ADMIN" },
  cryptsetup: { debianPackage: "cryptsetup-bin", envVar: "GLINT_CRYPTSETUP" },
  "ssh-keygen": { debianPackage: "openssh-client", envVar: "GLINT_SSH_KEYGEN" },
  cp: { debianPackage: "coreutils", envVar: "GLINT_CP" },
  // libvirt integration (src/libvirt/).
  virsh: { debianPackage: "libvirt-clients", envVar: "GLINT_VIRSH" },
  "virt-xml-validate": { debianPackage: "libvirt-clients", envVar: "GLINT_VIRT_XML_VALIDATE" },
  // One flush per bulk-create batch (src/ops/batch-create.ts).
  sync: { debianPackage: "coreutils", envVar: "GLINT_SYNC" },
} as const satisfies Readonly<Record<string, ToolInfo>>;

export type ToolName = keyof typeof TOOLS;

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) return false;
    await fs.access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of `command` (a path if it contains '/', else searched on env.PATH like execvp). */
async function resolveCommand(
  command: string,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  if (command.includes("/")) {
    const abs = path.resolve(command);
    return (await isExecutableFile(abs)) ? abs : undefined;
  }
  const dirs = (env.PATH ?? DEFAULT_PATH).split(":").filter((d) => d !== "");
  for (const dir of dirs) {
    const candidate = path.resolve(dir, command);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The absolute path of host tool `name`: `$GLINT_…` (a path, or a name looked
 * up on PATH) if set, else `name` on PATH. Throws MissingToolError naming the
 * Debian package if it is not there.
 */
export async function requireTool(
  name: ToolName,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const info: ToolInfo | undefined = TOOLS[name];
  if (info === undefined) throw new GlintError(`unknown host tool ${JSON.stringify(name)}`);
  const override = env[info.envVar];
  if (override !== undefined && override !== "") {
    const found = await resolveCommand(override, env);
    if (found === undefined) {
      throw new MissingToolError(`${name} (${info.envVar}=${override})`, info.debianPackage);
    }
    return found;
  }
  const found = await resolveCommand(name, env);
  if (found === undefined) throw new MissingToolError(name, info.debianPackage);
  return found;
}

export interface RunToolOptions {
  /** Environment for the lookup and for the child; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Kill the tool after this many milliseconds (default: no limit). */
  readonly timeoutMs?: number;
  readonly maxBuffer?: number;
}

export interface ToolOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/** The first non-empty line of a tool's stderr, without a leading `<tool>: `. */
export function firstErrorLine(stderr: string, tool: string): string {
  const line =
    stderr
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "") ?? "";
  const base = path.basename(tool);
  return line.startsWith(`${base}: `) ? line.slice(base.length + 2) : line;
}

/**
 * Run host tool `name` with `args` (execFile, no shell). A failure becomes a
 * one-line GlintError: `<tool> <first arg> failed: <first line of stderr>`.
 */
export async function runTool(
  name: ToolName,
  args: readonly string[],
  options: RunToolOptions = {},
): Promise<ToolOutput> {
  const env = options.env ?? process.env;
  const bin = await requireTool(name, env);
  try {
    const { stdout, stderr } = await execFileAsync(bin, [...args], {
      env,
      cwd: options.cwd,
      timeout: options.timeoutMs ?? 0,
      maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024,
      encoding: "utf8",
    });
    return { stdout, stderr };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
    if (e.code === "ENOENT") throw new MissingToolError(name, TOOLS[name].debianPackage);
    const what = `${name}${args[0] === undefined ? "" : ` ${args[0]}`}`;
    const detail = firstErrorLine(e.stderr ?? "", bin);
    if (e.killed) {
      throw new GlintError(`${what} timed out after ${options.timeoutMs} ms`, {
        code: "tool-failed",
        details: { tool: name },
        cause: error,
      });
    }
    throw new GlintError(`${what} failed: ${detail || e.message.split("\n")[0]}`, {
      code: "tool-failed",
      details: { tool: name },
      cause: error,
    });
  }
}
