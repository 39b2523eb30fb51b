import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { errorLine } from "../../src/cli/advice.js";
import { GlintError, MissingToolError, UsageError } from "../../src/errors.js";
import {
  type FirmwareDescriptor,
  firmwareDescriptorSchema,
  globMatch,
  installUefiVars,
  prepareUefiReset,
  resetUefiVariables,
  resolveFirmware,
} from "../../src/firmware/index.js";
import { tempDir } from "../support/tmp.js";
import { enrolledKeys } from "../support/uefi-vars.js";

/** No GLINT_OVMF_* and no per-user descriptor dir: only /etc and /usr/share count. */
const CLEAN_ENV: NodeJS.ProcessEnv = { PATH: process.env.PATH };

let tmp: string;
beforeEach(async () => {
  tmp = await tempDir("glint-ovmf-test-");
});

async function readDescriptor(file: string): Promise<FirmwareDescriptor> {
  return firmwareDescriptorSchema.parse(JSON.parse(await fs.readFile(file, "utf8")));
}

function flash(d: FirmwareDescriptor): { code: string; vars: string | undefined } {
  if (d.mapping.device !== "flash") throw new Error("not a flash descriptor");
  return { code: d.mapping.executable.filename, vars: d.mapping["nvram-template"]?.filename };
}

describe("resolveFirmware on the host's real descriptors", () => {
  it("uefi picks the plain (no Secure Boot) edk2 build for q35", async () => {
    const fw = await resolveFirmware("uefi", { env: CLEAN_ENV });
    expect(fw.descriptor).not.toBeNull();
    const descriptorFile = fw.descriptor as string;
    // Debian 12's ovmf: 40 and 50 are Secure Boot builds, 60 is the plain one.
    expect(path.basename(descriptorFile)).toBe("60-edk2-x86_64.json");
    expect(fw.secureBoot).toBe(false);
    expect(fw.requiresSmm).toBe(false);
    expect((await fs.stat(fw.code)).isFile()).toBe(true);
    expect((await fs.stat(fw.varsTemplate)).isFile()).toBe(true);

    const d = await readDescriptor(descriptorFile);
    expect(flash(d)).toEqual({ code: fw.code, vars: fw.varsTemplate });
    expect(d["interface-types"]).toContain("uefi");
    expect(d.features).not.toContain("secure-boot");
    expect(
      d.targets.some((t) => t.architecture === "x86_64" && t.machines.includes("pc-q35-*")),
    ).toBe(true);
  });

  it("uefi-secure picks Secure Boot code with keys enrolled in the NVRAM template", async () => {
    const fw = await resolveFirmware("uefi-secure", { env: CLEAN_ENV });
    const descriptorFile = fw.descriptor as string;
    expect(path.basename(descriptorFile)).toBe("40-edk2-x86_64-secure-enrolled.json");
    expect(fw.secureBoot).toBe(true);
    expect(fw.requiresSmm).toBe(true);
    expect((await fs.stat(fw.code)).isFile()).toBe(true);
    expect((await fs.stat(fw.varsTemplate)).isFile()).toBe(true);

    const d = await readDescriptor(descriptorFile);
    expect(flash(d)).toEqual({ code: fw.code, vars: fw.varsTemplate });
    for (const feature of ["secure-boot", "enrolled-keys", "requires-smm"]) {
      expect(d.features).toContain(feature);
    }

    // The enrolled template really differs from the empty one the plain build uses.
    const plain = await resolveFirmware("uefi", { env: CLEAN_ENV });
    expect(fw.code).not.toBe(plain.code);
    const [a, b] = await Promise.all([
      fs.readFile(fw.varsTemplate),
      fs.readFile(plain.varsTemplate),
    ]);
    expect(a.equals(b)).toBe(false);
    // Enrolled means the Secure Boot keys are set in the template's variable store.
    expect((await enrolledKeys(fw.varsTemplate)).sort()).toEqual(["KEK", "PK", "db", "dbx"]);
    expect(await enrolledKeys(plain.varsTemplate)).toEqual([]);
  });

  it("falls back to Debian's well-known file names when no descriptor matches", async () => {
    const empty = path.join(tmp, "empty");
    await fs.mkdir(empty);
    const plain = await resolveFirmware("uefi", { env: CLEAN_ENV, descriptorDirs: [empty] });
    expect(plain).toEqual({
      code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
      varsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd",
      secureBoot: false,
      requiresSmm: false,
      descriptor: null,
    });
    const secure = await resolveFirmware("uefi-secure", {
      env: CLEAN_ENV,
      descriptorDirs: [empty],
    });
    expect(secure).toEqual({
      code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
      varsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
      secureBoot: true,
      requiresSmm: true,
      descriptor: null,
    });
  });
});

describe("resolveFirmware with crafted descriptors", () => {
  let etc: string;
  let share: string;
  let files: string;
  const none: string[] = [];

  beforeEach(async () => {
    etc = path.join(tmp, "etc");
    share = path.join(tmp, "share");
    files = path.join(tmp, "fw");
    await Promise.all([etc, share, files].map((d) => fs.mkdir(d)));
  });

  async function fwFile(name: string): Promise<string> {
    const file = path.join(files, name);
    await fs.writeFile(file, randomBytes(64));
    return file;
  }

  async function descriptor(
    dir: string,
    name: string,
    opts: {
      code: string;
      vars: string;
      features?: string[];
      machines?: string[];
      mode?: string;
      format?: string;
      arch?: string;
    },
  ): Promise<string> {
    const file = path.join(dir, name);
    const mapping: Record<string, unknown> = {
      device: "flash",
      executable: { filename: opts.code, format: opts.format ?? "raw" },
      "nvram-template": { filename: opts.vars, format: opts.format ?? "raw" },
    };
    if (opts.mode !== undefined) mapping.mode = opts.mode;
    await fs.writeFile(
      file,
      JSON.stringify({
        description: name,
        "interface-types": ["uefi"],
        mapping,
        targets: [{ architecture: opts.arch ?? "x86_64", machines: opts.machines ?? ["pc-q35-*"] }],
        features: opts.features ?? ["acpi-s3"],
        tags: [],
      }),
    );
    return file;
  }

  it("a file in the more specific dir overrides the same name in the less specific one", async () => {
    const shareCode = await fwFile("share-code.fd");
    const etcCode = await fwFile("etc-code.fd");
    const vars = await fwFile("vars.fd");
    await descriptor(share, "50-ovmf.json", { code: shareCode, vars });
    const winner = await descriptor(etc, "50-ovmf.json", { code: etcCode, vars });

    const fw = await resolveFirmware("uefi", {
      env: CLEAN_ENV,
      descriptorDirs: [etc, share],
      fallbackDirs: none,
    });
    expect(fw).toEqual({
      code: etcCode,
      varsTemplate: vars,
      secureBoot: false,
      requiresSmm: false,
      descriptor: winner,
    });
  });

  it("sorts by file name across dirs, and a zero-length file hides its name", async () => {
    const a = await fwFile("a.fd");
    const b = await fwFile("b.fd");
    const c = await fwFile("c.fd");
    const vars = await fwFile("vars.fd");
    await descriptor(share, "10-a.json", { code: a, vars });
    const twenty = await descriptor(share, "20-b.json", { code: b, vars });
    await descriptor(etc, "30-c.json", { code: c, vars });

    const opts = { env: CLEAN_ENV, descriptorDirs: [etc, share], fallbackDirs: none };
    // Name order wins over directory: 10-a (from share) beats 30-c (from etc).
    expect((await resolveFirmware("uefi", opts)).code).toBe(a);

    await fs.writeFile(path.join(etc, "10-a.json"), "");
    const fw = await resolveFirmware("uefi", opts);
    expect(fw.code).toBe(b);
    expect(fw.descriptor).toBe(twenty);
  });

  it("skips descriptors that do not fit, and invalid ones without crashing", async () => {
    const code = await fwFile("code.fd");
    const vars = await fwFile("vars.fd");
    const good = await fwFile("good.fd");
    await fs.writeFile(path.join(share, "01-not-json.json"), "{ this is not json");
    await fs.writeFile(path.join(share, "02-bad-schema.json"), JSON.stringify({ mapping: 1 }));
    await fs.writeFile(path.join(share, "03-ignored.txt"), "not a .json file");
    await descriptor(share, "04-i440fx-only.json", { code, vars, machines: ["pc-i440fx-*"] });
    await descriptor(share, "05-aarch64.json", { code, vars, arch: "aarch64" });
    await descriptor(share, "06-qcow2.json", { code, vars, format: "qcow2" });
    await descriptor(share, "07-stateless.json", { code, vars, mode: "stateless" });
    await descriptor(share, "08-missing-file.json", { code: path.join(files, "nope.fd"), vars });
    await descriptor(share, "09-secure.json", {
      code,
      vars,
      features: ["secure-boot", "requires-smm"],
    });
    const chosen = await descriptor(share, "10-good.json", {
      code: good,
      vars,
      mode: "split",
      machines: ["pc-i440fx-*", "pc-q35-[0-9]*"],
    });

    const invalid: string[] = [];
    const fw = await resolveFirmware("uefi", {
      env: CLEAN_ENV,
      descriptorDirs: [share],
      fallbackDirs: none,
      onInvalidDescriptor: (file) => invalid.push(path.basename(file)),
    });
    expect(fw.descriptor).toBe(chosen);
    expect(fw.code).toBe(good);
    expect(invalid).toEqual(["01-not-json.json", "02-bad-schema.json"]);
  });

  it("uefi-secure needs secure-boot, enrolled-keys and requires-smm", async () => {
    const code = await fwFile("code.fd");
    const vars = await fwFile("vars.fd");
    const enrolled = await fwFile("enrolled.fd");
    await descriptor(share, "10-sb-empty-vars.json", {
      code,
      vars,
      features: ["secure-boot", "requires-smm"],
    });
    await descriptor(share, "20-sb-no-smm.json", {
      code,
      vars,
      features: ["secure-boot", "enrolled-keys"],
    });
    await descriptor(share, "30-plain.json", { code, vars });
    const chosen = await descriptor(share, "40-sb-enrolled.json", {
      code,
      vars: enrolled,
      features: ["acpi-s3", "enrolled-keys", "requires-smm", "secure-boot"],
    });

    const fw = await resolveFirmware("uefi-secure", {
      env: CLEAN_ENV,
      descriptorDirs: [share],
      fallbackDirs: none,
    });
    expect(fw).toEqual({
      code,
      varsTemplate: enrolled,
      secureBoot: true,
      requiresSmm: true,
      descriptor: chosen,
    });
  });

  it("falls back to well-known names when every descriptor is invalid", async () => {
    await fs.writeFile(path.join(share, "50-broken.json"), "[]");
    const ovmf = path.join(tmp, "OVMF");
    await fs.mkdir(ovmf);
    await fs.writeFile(path.join(ovmf, "OVMF_CODE_4M.fd"), "code");
    await fs.writeFile(path.join(ovmf, "OVMF_VARS_4M.fd"), "vars");
    const fw = await resolveFirmware("uefi", {
      env: CLEAN_ENV,
      descriptorDirs: [share],
      fallbackDirs: [ovmf],
    });
    expect(fw).toEqual({
      code: path.join(ovmf, "OVMF_CODE_4M.fd"),
      varsTemplate: path.join(ovmf, "OVMF_VARS_4M.fd"),
      secureBoot: false,
      requiresSmm: false,
      descriptor: null,
    });
    // No Secure Boot pair there: uefi-secure must not take the plain files.
    await expect(
      resolveFirmware("uefi-secure", {
        env: CLEAN_ENV,
        descriptorDirs: [share],
        fallbackDirs: [ovmf],
      }),
    ).rejects.toThrow(MissingToolError);
  });

  it("reports missing firmware on one line with the package to install", async () => {
    const error = await resolveFirmware("uefi", {
      env: CLEAN_ENV,
      descriptorDirs: [path.join(tmp, "does-not-exist"), share],
      fallbackDirs: [path.join(tmp, "nothing-here")],
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingToolError);
    // The library names the package; the CLI turns that into the advice.
    expect((error as GlintError).details.debianPackage).toBe("ovmf");
    expect(errorLine(error as GlintError)).toBe(
      "OVMF firmware not found: install it with `apt-get install ovmf`",
    );
    expect((error as GlintError).exitCode).toBe(1);
  });
});

describe("GLINT_OVMF_CODE / GLINT_OVMF_VARS", () => {
  it("override everything when both are set", async () => {
    const code = path.join(tmp, "my code.fd");
    const vars = path.join(tmp, "my vars.fd");
    await fs.writeFile(code, "c");
    await fs.writeFile(vars, "v");
    const env = { ...CLEAN_ENV, GLINT_OVMF_CODE: code, GLINT_OVMF_VARS: vars };
    expect(await resolveFirmware("uefi", { env })).toEqual({
      code,
      varsTemplate: vars,
      secureBoot: false,
      requiresSmm: false,
      descriptor: null,
    });
    expect((await resolveFirmware("uefi-secure", { env })).secureBoot).toBe(true);
  });

  it("must be set together", async () => {
    const env = { ...CLEAN_ENV, GLINT_OVMF_CODE: "/usr/share/OVMF/OVMF_CODE_4M.fd" };
    const error = await resolveFirmware("uefi", { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(
      /GLINT_OVMF_CODE and GLINT_OVMF_VARS must be set together/,
    );
  });

  it("must name existing files", async () => {
    const env = {
      ...CLEAN_ENV,
      GLINT_OVMF_CODE: "/usr/share/OVMF/OVMF_CODE_4M.fd",
      GLINT_OVMF_VARS: path.join(tmp, "missing.fd"),
    };
    await expect(resolveFirmware("uefi", { env })).rejects.toThrow(
      `GLINT_OVMF_VARS=${path.join(tmp, "missing.fd")}: no such file`,
    );
  });
});

describe("globMatch", () => {
  it("understands the fnmatch subset used in descriptors", () => {
    expect(globMatch("pc-q35-*", "pc-q35-7.2")).toBe(true);
    expect(globMatch("pc-q35-*", "pc-i440fx-7.2")).toBe(false);
    expect(globMatch("pc-q35-?.?", "pc-q35-7.2")).toBe(true);
    expect(globMatch("pc-q35-[0-9]*", "pc-q35-7.2")).toBe(true);
    expect(globMatch("pc-q35-[!0-9]*", "pc-q35-7.2")).toBe(false);
    expect(globMatch("pc.q35", "pcxq35")).toBe(false);
  });
});

describe("UEFI NVRAM", () => {
  async function installed() {
    const fw = await resolveFirmware("uefi", { env: CLEAN_ENV });
    const seed = path.join(tmp, "uefi-seed.fd");
    const instance = path.join(tmp, "uefi-instance.fd");
    await installUefiVars(fw, seed, instance);
    return { fw, seed, instance };
  }

  async function scribble(file: string): Promise<void> {
    const fh = await fs.open(file, "r+");
    try {
      await fh.write(randomBytes(4096), 0, 4096, 8192);
    } finally {
      await fh.close();
    }
  }

  async function leftovers(): Promise<string[]> {
    return (await fs.readdir(tmp)).filter((n) => n.includes(".tmp-"));
  }

  it("installs the template as seed and instance", async () => {
    const { fw, seed, instance } = await installed();
    const template = await fs.readFile(fw.varsTemplate);
    expect((await fs.readFile(seed)).equals(template)).toBe(true);
    expect((await fs.readFile(instance)).equals(template)).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it("resets a modified instance to the seed, byte for byte", async () => {
    const { seed, instance } = await installed();
    await scribble(instance);
    expect((await fs.readFile(instance)).equals(await fs.readFile(seed))).toBe(false);
    await resetUefiVariables(seed, instance);
    expect((await fs.readFile(instance)).equals(await fs.readFile(seed))).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it("prepare + abort leaves the instance untouched", async () => {
    const { seed, instance } = await installed();
    await scribble(instance);
    const before = await fs.readFile(instance);
    const prepared = await prepareUefiReset(seed, instance);
    expect(await leftovers()).toHaveLength(1);
    await prepared.abort();
    expect((await fs.readFile(instance)).equals(before)).toBe(true);
    expect(await leftovers()).toEqual([]);
    await expect(prepared.commit()).rejects.toThrow(/already aborted/);
  });

  it("prepare + commit replaces the instance with the seed", async () => {
    const { seed, instance } = await installed();
    await scribble(instance);
    const prepared = await prepareUefiReset(seed, instance);
    // Nothing visible before commit.
    expect((await fs.readFile(instance)).equals(await fs.readFile(seed))).toBe(false);
    await prepared.commit();
    expect((await fs.readFile(instance)).equals(await fs.readFile(seed))).toBe(true);
    await prepared.abort(); // no-op after commit
    expect((await fs.readFile(instance)).equals(await fs.readFile(seed))).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it("explains a missing seed", async () => {
    const seed = path.join(tmp, "uefi-seed.fd");
    const instance = path.join(tmp, "uefi-instance.fd");
    await fs.writeFile(instance, "x");
    // Each call starts only when its turn comes, so no rejection goes unobserved.
    for (const attempt of [resetUefiVariables, prepareUefiReset]) {
      const error = await attempt(seed, instance).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GlintError);
      expect((error as Error).message).toContain(`UEFI seed NVRAM ${seed} is missing`);
    }
    expect(await fs.readFile(instance, "utf8")).toBe("x");
    expect(await leftovers()).toEqual([]);
  });
});
