/**
 * What to do next, for each error the library reports. The library says what
 * went wrong (a code and its details); this module, and only this one, turns
 * that into advice naming the glint command or package that helps.
 */
import type { GlintError } from "../errors.js";

const HISTORY = "the old file is kept in history/";

/** Advice for `error`, or undefined when its message says it all. */
export function adviceFor(error: GlintError): string | undefined {
  const d = error.details;
  const vm = d.vm ?? "<vm>";
  switch (error.code) {
    case "missing-tool":
      return d.debianPackage ? `install it with \`apt-get install ${d.debianPackage}\`` : undefined;
    case "not-found":
      if (d.reason === "no-identifiers" || d.reason === "no-vm")
        return `create it with \`glint create ${vm}\``;
      if (d.reason === "uefi-seed") return `recreate them with \`glint nuke ${vm}\``;
      if (d.reason === "overlay") return `recreate it (e.g. \`glint regen disk ${vm}\`)`;
      if (d.reason === "no-domain")
        return "list the domains with `virsh list --all` (with the same --connect URI)";
      return undefined;
    case "busy":
      if (d.reason === "backup-running") return undefined;
      if (d.reason === "running")
        return `stop the VM first (its QEMU runs as process ${d.pid ?? "?"})`;
      if (d.reason === "domain-running")
        return "shut the domain down first (`virsh shutdown <domain>`), then sync again";
      return "wait for it to finish (or stop it) and try again";
    case "invalid-file":
      if (d.reason === "identifiers")
        return `fix it, or replace the identity with \`glint create ${vm} --force\` (${HISTORY})`;
      if (d.reason === "newer-schema") return "upgrade Glint";
      if (d.reason === "journal") return "delete it to keep the current identity";
      if (d.reason === "symlink")
        return "replace the link with the real file or directory and try again";
      if (d.reason === "template") return "fix the template (see README, Identity templates)";
      return "fix it";
    case "interrupted":
      if (d.reason === "pending-create")
        return `run \`glint create ${vm}\` (or any command that changes the VM) to finish it first`;
      if (d.reason === "pending")
        return `run \`glint script ${vm}\` (or any command that changes the VM) to finish it first`;
      if (d.reason === "unfinished")
        return `fix that and run the command again, or delete ${d.file ?? ".pending.json"} to keep the current identity`;
      return `the next glint command on "${vm}" finishes it`;
    case "conflict":
      if (d.reason === "has-identifiers")
        return `use \`glint create ${vm} --force\` to replace them (the old ones are kept in history/)`;
      if (d.reason === "exists")
        return `disk and firmware options only apply to a new VM: use another name, or \`glint nuke ${vm}\` to reset it`;
      if (d.reason === "domain-exists")
        return `update it with \`glint libvirt sync ${vm}\`, or choose another name with --name`;
      if (d.reason === "duplicate" || d.reason === "journal-duplicate")
        return `give one of them a new identity with \`glint regen base ${vm}\`, and run \`glint doctor\` to list every duplicate`;
      return undefined;
    case "io":
      return ioAdvice(d.reason);
    case "registry":
      if (d.reason === "exhausted")
        return "choose a prefix with more random bits, e.g. `glint registry config --mac-prefix 02`";
      if (d.reason === "drift" || d.reason === "duplicates-found")
        return "give one of each pair a new identity with `glint regen base <vm>`, then run `glint registry rebuild`";
      return "check that the registry is reachable (--registry, GLINT_REGISTRY or .glint/config.json) and run the command again; nothing was changed";
    case "tool-failed":
      if (d.reason === "libvirt-unreachable")
        return "check that the libvirt daemon (libvirtd or virtqemud) runs and that --connect names its URI";
      return undefined;
    case "unsupported":
      if (d.reason === "no-tpm") return "it was created without --tpm";
      if (d.reason === "nic-macs-missing")
        return `draw and keep them with \`glint qemu-args ${vm} --draw-macs\` (with the same QEMU arguments after --), or \`glint edit ${vm} --nics N\` for its own NICs`;
      return undefined;
    default:
      return undefined;
  }
}

/** What to do about a system error (see src/vm/syserror.ts), by errno. */
function ioAdvice(reason: string | undefined): string | undefined {
  switch (reason) {
    case "enospc":
      return "free some space and run the command again";
    case "edquot":
      return "free some space (or raise the quota) and run the command again";
    case "erofs":
      return "remount it read-write, or use a --home on a writable file system";
    case "eacces":
    case "eperm":
      return `check the owner and mode of that path (glint runs as uid ${process.getuid?.() ?? "?"})`;
    case "eisdir":
    case "enotdir":
      return "move it out of the way and run the command again";
    case "eio":
      return "the disk may be failing; check `dmesg`";
    default:
      return undefined;
  }
}

/** The one line the CLI prints for `error`. */
export function errorLine(error: GlintError): string {
  const advice = adviceFor(error);
  const joiner = error.code === "missing-tool" ? ": " : "; ";
  const text = advice ? `${error.message}${joiner}${advice}` : error.message;
  return text.replace(/\s*\n\s*/g, " ").trim();
}
