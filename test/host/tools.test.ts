import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { errorLine } from "../../src/cli/advice.js";
import { GlintError, MissingToolError } from "../../src/errors.js";
import {
  firstErrorLine,
  requireTool,
  runTool,
  TOOLS,
  type ToolName,
} from "../../src/host/tools.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
let emptyBin: string;
let fakeBin: string;

beforeAll(async () => {
  dir = await tempDir("glint-tools-");
  emptyBin = path.join(dir, "empty");
  fakeBin = path.join(dir, "fake");
  await mkdir(emptyBin);
  await mkdir(fakeBin);
  // A fake qemu-img that fails like the real one does.
  const fake = path.join(fakeBin, "qemu-img");
  await writeFile(
    fake,
    '#!/bin/sh\necho "qemu-img: $2: Could not open it" >&2\necho second line >&2\nexit 1\n',
  );
  await chmod(fake, 0o755);
  // Present but not executable: must not count.
  await writeFile(path.join(fakeBin, "swtpm"), "#!/bin/sh\n");
});

describe("TOOLS", () => {
  it("names the Debian package of every tool", () => {
    expect(TOOLS).toEqual({
      "qemu-system-x86_64": { debianPackage: "qemu-system-x86", envVar: "GLINT_QEMU" },
      "qemu-img": { debianPackage: "qemu-utils", envVar: "GLINT_QEMU_IMG" },
      swtpm: { debianPackage: "swtpm", envVar: "GLINT_SWTPM" },
      swtpm_setup: { debianPackage: "swtpm-tools", envVar: "GLINT_SWTPM_SETUP" },
      swtpm_localca: { debianPackage: "swtpm-tools", envVar: "GLINT_SWTPM_LOCALCA" },
      genisoimage: { debianPackage: "genisoimage", envVar: "GLINT_GENISOIMAGE" },
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
      sync: { debianPackage: "coreutils", envVar: "GLINT_SYNC" },
      virsh: { debianPackage: "libvirt-clients", envVar: "GLINT_VIRSH" },
      "virt-xml-validate": { debianPackage: "libvirt-clients", envVar: "GLINT_VIRT_XML_VALIDATE" },
    });
  });
});

describe("requireTool", () => {
  it("throws MissingToolError naming the package when PATH has no such tool", async () => {
    for (const name of Object.keys(TOOLS) as ToolName[]) {
      const err = await requireTool(name, { PATH: emptyBin }).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(MissingToolError);
      expect(errorLine(err as GlintError), name).toContain(
        `apt-get install ${TOOLS[name].debianPackage}`,
      );
      expect((err as Error).message, name).toContain(name);
    }
  });

  it("ignores files that are not executable", async () => {
    await expect(requireTool("swtpm", { PATH: fakeBin })).rejects.toBeInstanceOf(MissingToolError);
  });

  it("finds tools on PATH and returns an absolute path", async () => {
    expect(await requireTool("qemu-img", { PATH: `${emptyBin}:${fakeBin}` })).toBe(
      path.join(fakeBin, "qemu-img"),
    );
    const real = await requireTool("qemu-img", { PATH: process.env.PATH });
    expect(path.isAbsolute(real)).toBe(true);
    expect(path.basename(real)).toBe("qemu-img");
  });

  it("honours the GLINT_* override (a path or a name on PATH)", async () => {
    const fake = path.join(fakeBin, "qemu-img");
    expect(await requireTool("qemu-img", { PATH: emptyBin, GLINT_QEMU_IMG: fake })).toBe(fake);
    expect(await requireTool("qemu-system-x86_64", { PATH: fakeBin, GLINT_QEMU: "qemu-img" })).toBe(
      fake,
    );
    const err = await requireTool("qemu-img", {
      PATH: fakeBin,
      GLINT_QEMU_IMG: "/nonexistent/qemu-img",
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingToolError);
    expect((err as Error).message).toContain("GLINT_QEMU_IMG=/nonexistent/qemu-img");
    expect(errorLine(err as GlintError)).toContain("qemu-utils");
  });
});

describe("runTool", () => {
  it("turns a failure into a one-line GlintError with the first stderr line", async () => {
    const err = await runTool("qemu-img", ["info", "/x"], { env: { PATH: fakeBin } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GlintError);
    expect((err as Error).message).toBe("qemu-img info failed: /x: Could not open it");
  });

  it("returns stdout of a successful run", async () => {
    const { stdout } = await runTool("qemu-img", ["--version"]);
    expect(stdout).toMatch(/^qemu-img version \d+\.\d+/);
  });

  it("reports a missing tool with its package", async () => {
    const err = await runTool("genisoimage", ["-version"], { env: { PATH: emptyBin } }).catch(
      (e: unknown) => e,
    );
    expect(errorLine(err as GlintError)).toMatch(/apt-get install genisoimage/);
  });

  it("firstErrorLine skips blank lines and the tool prefix", () => {
    expect(firstErrorLine("\n  \nqemu-img: bad thing\nmore", "/usr/bin/qemu-img")).toBe(
      "bad thing",
    );
    expect(firstErrorLine("other: x", "qemu-img")).toBe("other: x");
    expect(firstErrorLine("", "qemu-img")).toBe("");
  });
});
