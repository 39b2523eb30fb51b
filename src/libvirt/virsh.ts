/**
 * Talking to a libvirt daemon through `virsh` (libvirt-clients), always with
 * an argv array. Failures become one-line GlintErrors built from virsh's
 * `error:` lines.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GlintError, glintError, MissingToolError } from "../errors.js";
import { runTool } from "../host/tools.js";

export interface VirshOptions {
  /** `--connect URI`; virsh's default (`$LIBVIRT_DEFAULT_URI`, else qemu:///system for root) when absent. */
  readonly uri?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

/** virsh's `error: …` lines, joined into one. */
function virshMessage(message: string): string {
  const lines = message
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("error:"))
    .map((l) => l.replace(/^error:\s*/, ""));
  return lines.length > 0 ? lines.join(": ") : (message.split("\n")[0] ?? message);
}

/** Run `virsh [-c URI] args…`; resolves to stdout. */
export async function virsh(args: readonly string[], options: VirshOptions): Promise<string> {
  const argv = [...(options.uri === undefined ? [] : ["-c", options.uri]), ...args];
  try {
    const { stdout } = await runTool("virsh", argv, {
      ...(options.env ? { env: options.env } : {}),
      timeoutMs: 120_000,
    });
    return stdout;
  } catch (error) {
    if (error instanceof MissingToolError || !(error instanceof GlintError)) throw error;
    const cause = error.cause as { stderr?: string } | undefined;
    const detail = virshMessage(cause?.stderr ?? error.message);
    const notFound = /domain not found|failed to get domain/i.test(detail);
    const unreachable = /failed to connect|no connection driver|unable to connect/i.test(detail);
    throw glintError(
      notFound ? "not-found" : "tool-failed",
      `virsh ${args[0] ?? ""}${options.uri === undefined ? "" : ` (${options.uri})`}: ${detail}`,
      {
        tool: "virsh",
        reason: notFound ? "no-domain" : unreachable ? "libvirt-unreachable" : "virsh",
      },
    );
  }
}

/** The domain's state as virsh names it (`running`, `shut off`, `paused`, …). */
export async function domainState(name: string, options: VirshOptions): Promise<string> {
  return (await virsh(["domstate", name], options)).trim();
}

/** Whether the domain exists. */
export async function domainExists(name: string, options: VirshOptions): Promise<boolean> {
  const list = await virsh(["list", "--all", "--name"], options);
  return list.split("\n").some((l) => l.trim() === name);
}

/** The domain's persistent (inactive) XML. */
export function dumpXml(name: string, options: VirshOptions): Promise<string> {
  return virsh(["dumpxml", "--inactive", name], options);
}

/** `virsh define --validate` of `xml` (through a private temp file). */
export async function defineXml(xml: string, options: VirshOptions): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "glint-libvirt-"));
  try {
    const file = path.join(dir, "domain.xml");
    await fs.writeFile(file, xml, { mode: 0o600 });
    await virsh(["define", "--validate", file], options);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Undefine, keeping the NVRAM file (it is Glint's) and, unless told, deleting libvirt's TPM copy. */
export async function undefine(name: string, options: VirshOptions): Promise<void> {
  await virsh(["undefine", name, "--keep-nvram"], options);
}

/** Whether `state` is one in which the domain's QEMU process exists. */
export function isActive(state: string): boolean {
  return !["shut off", "crashed"].includes(state);
}
