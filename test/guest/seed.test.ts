/**
 * The NoCloud seed ISO (real genisoimage) and the atomic writers of the guest
 * files into a VM directory: the static script (byte-identical for every VM),
 * identity.env and seed.iso.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { parse } from "yaml";
import { GlintError, MissingToolError } from "../../src/errors.js";
import {
  buildSeedIso,
  createPostInstallScript,
  GUEST_IDENTITY_ENV_PATH,
  GUEST_SCRIPT_PATH,
  parseIdentityEnv,
  prepareGuestFiles,
  renderIdentityEnv,
  renderSeed,
  SCRIPT_FILE,
  writeSeed,
} from "../../src/guest/index.js";
import { requireTool } from "../../src/host/tools.js";
import { vmPaths } from "../../src/vm/layout.js";
import { run, runOk } from "../support/exec.js";
import { freshIds, regenerate } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";

/** Volume identifier from the ISO 9660 primary volume descriptor (sector 16). */
async function volumeId(iso: string): Promise<string> {
  const fh = await fs.open(iso, "r");
  try {
    const pvd = Buffer.alloc(2048);
    await fh.read(pvd, 0, 2048, 16 * 2048);
    expect(pvd[0]).toBe(1); // primary volume descriptor
    expect(pvd.subarray(1, 6).toString("latin1")).toBe("CD001");
    return pvd.subarray(40, 72).toString("latin1").trimEnd();
  } finally {
    await fh.close();
  }
}

/** Files in the ISO (Rock Ridge names), via isoinfo. */
async function isoFiles(iso: string): Promise<string[]> {
  const out = await runOk("isoinfo", ["-R", "-f", "-i", iso]);
  return out.split("\n").filter(Boolean).sort();
}

async function isoExtract(iso: string, file: string): Promise<string> {
  return runOk("isoinfo", ["-R", "-i", iso, "-x", file]);
}

/** Names in `dir` that look like Glint temp files. */
async function temps(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((n) => n.includes(".tmp-"));
}

let home: string;

beforeEach(async () => {
  home = await tempDir("glint-seed-");
});

afterEach(async () => {
  await fs.rm(home, { recursive: true, force: true });
});

describe("buildSeedIso", () => {
  test("builds a cidata ISO with user-data and meta-data", async () => {
    const files = renderSeed("web-01", freshIds());
    const iso = path.join(home, "seed.iso");
    await buildSeedIso(files, iso);
    expect(await volumeId(iso)).toBe("cidata");
    const info = await runOk("isoinfo", ["-d", "-i", iso]);
    expect(info).toMatch(/^Volume id: cidata$/m);
    expect(info).toMatch(/Rock Ridge/);
    expect(info).toMatch(/Joliet/);
    expect(await isoFiles(iso)).toEqual(["/meta-data", "/user-data"]);
    expect(await isoExtract(iso, "/user-data")).toBe(files.userData);
    expect(await isoExtract(iso, "/meta-data")).toBe(files.metaData);
    expect(await temps(home)).toEqual([]);
  });

  test("replaces an existing ISO atomically", async () => {
    const iso = path.join(home, "seed.iso");
    const ids = freshIds();
    await buildSeedIso(renderSeed("vm", ids), iso);
    const next = renderSeed("vm", regenerate(ids, "nuke"));
    await buildSeedIso(next, iso);
    expect(await isoExtract(iso, "/meta-data")).toBe(next.metaData);
    expect(await fs.readdir(home)).toEqual(["seed.iso"]);
  });

  test("a missing genisoimage is a MissingToolError; a failing one a GlintError; no temps left", async () => {
    const files = renderSeed("vm", freshIds());
    const iso = path.join(home, "seed.iso");
    const missing = buildSeedIso(files, iso, {
      env: { ...process.env, GLINT_GENISOIMAGE: path.join(home, "no-such-genisoimage") },
    });
    await expect(missing).rejects.toBeInstanceOf(MissingToolError);
    await expect(missing).rejects.toMatchObject({ details: { debianPackage: "genisoimage" } });
    const failing = buildSeedIso(files, iso, {
      env: { ...process.env, GLINT_GENISOIMAGE: "false" },
    });
    await expect(failing).rejects.toBeInstanceOf(GlintError);
    await expect(failing).rejects.toThrow(/genisoimage failed/);
    await expect(failing).rejects.toMatchObject({ code: "tool-failed" });
    expect(await fs.readdir(home)).toEqual([]);
  });

  test("GLINT_GENISOIMAGE is honoured: a symlinked binary off PATH works, a missing one is named", async () => {
    const files = renderSeed("vm", freshIds());
    const tools = await tempDir("glint-seed-tools-");
    try {
      const bin = path.join(tools, "bin");
      const emptyPath = path.join(tools, "empty");
      await fs.mkdir(bin);
      await fs.mkdir(emptyPath);
      const link = path.join(bin, "my-genisoimage");
      await fs.symlink(await requireTool("genisoimage"), link);
      const env = { PATH: emptyPath, GLINT_GENISOIMAGE: link };
      // Not on PATH at all: without the override it is missing.
      await expect(
        buildSeedIso(files, path.join(home, "x.iso"), { env: { PATH: emptyPath } }),
      ).rejects.toBeInstanceOf(MissingToolError);

      const iso = path.join(home, "seed.iso");
      await buildSeedIso(files, iso, { env });
      expect(await volumeId(iso)).toBe("cidata");
      expect(await isoExtract(iso, "/user-data")).toBe(files.userData);

      const paths = vmPaths(home, "web-01");
      expect(await writeSeed(paths, freshIds(), { env })).toBe(paths.seedIso);
      expect(await volumeId(paths.seedIso)).toBe("cidata");
      const prepared = await prepareGuestFiles(paths, "web-01", freshIds(), { env });
      await prepared.commit();

      const nowhere = path.join(tools, "nonexistent", "genisoimage");
      const missing = writeSeed(paths, freshIds(), { env: { ...env, GLINT_GENISOIMAGE: nowhere } });
      await expect(missing).rejects.toBeInstanceOf(MissingToolError);
      await expect(missing).rejects.toThrow(`genisoimage (GLINT_GENISOIMAGE=${nowhere}) not found`);
      await expect(missing).rejects.toMatchObject({ details: { debianPackage: "genisoimage" } });
      expect((await fs.readdir(paths.dir)).filter((n) => n.includes(".tmp-"))).toEqual([]);
    } finally {
      await fs.rm(tools, { recursive: true, force: true });
    }
  });
});

describe("guest files in a VM directory", () => {
  test("createPostInstallScript writes the static script (0755) and identity.env (0644)", async () => {
    const paths = vmPaths(home, "web-01");
    const ids = freshIds();
    expect(await createPostInstallScript(paths, ids)).toBe(paths.script);
    expect(await fs.readFile(paths.script)).toEqual(await fs.readFile(SCRIPT_FILE));
    expect((await fs.stat(paths.script)).mode & 0o777).toBe(0o755);
    expect(await fs.readFile(paths.identityEnv, "utf8")).toBe(renderIdentityEnv("web-01", ids));
    expect((await fs.stat(paths.identityEnv)).mode & 0o777).toBe(0o644);
    // rewrite over existing files (e.g. read-only for others)
    await fs.chmod(paths.script, 0o400);
    await fs.chmod(paths.identityEnv, 0o400);
    const ids2 = regenerate(ids, "base");
    await createPostInstallScript(paths, ids2, { hostnameFrom: "machine-id" });
    expect(await fs.readFile(paths.identityEnv, "utf8")).toBe(
      renderIdentityEnv("web-01", ids2, { hostnameFrom: "machine-id" }),
    );
    expect((await fs.stat(paths.script)).mode & 0o777).toBe(0o755);
    expect((await fs.stat(paths.identityEnv)).mode & 0o777).toBe(0o644);
    expect(await temps(paths.shared)).toEqual([]);
    const r = await run("sh", [paths.script, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--dry-run");
  });

  test("two VMs' shared/set_identifiers.sh are byte-identical; each has a valid identity.env", async () => {
    const a = vmPaths(home, "web-01");
    const b = vmPaths(home, "db-02");
    const idsA = freshIds();
    const idsB = freshIds();
    await (await prepareGuestFiles(a, "web-01", idsA)).commit();
    await createPostInstallScript(b, idsB, { hostnameFrom: "machine-id" });
    const scriptA = await fs.readFile(a.script);
    expect(await fs.readFile(b.script)).toEqual(scriptA);
    expect(scriptA).toEqual(await fs.readFile(SCRIPT_FILE));
    const envA = parseIdentityEnv(await fs.readFile(a.identityEnv, "utf8"), a.identityEnv);
    const envB = parseIdentityEnv(await fs.readFile(b.identityEnv, "utf8"), b.identityEnv);
    expect(envA).toMatchObject({ VM_NAME: "web-01", HOSTNAME: "web-01", VM_UUID: idsA.vm_uuid });
    expect(envB).toMatchObject({
      VM_NAME: "db-02",
      HOSTNAME: `glint-${idsB.machine_id.slice(0, 8)}`,
      MACHINE_ID: idsB.machine_id,
    });
    expect(envA.MACHINE_ID).not.toBe(envB.MACHINE_ID);
  });

  test("writeSeed builds <vm>/seed.iso", async () => {
    const paths = vmPaths(home, "web-01");
    const ids = freshIds();
    expect(await writeSeed(paths, ids)).toBe(paths.seedIso);
    expect(await volumeId(paths.seedIso)).toBe("cidata");
    expect(await isoExtract(paths.seedIso, "/meta-data")).toBe(renderSeed("web-01", ids).metaData);
  });

  test("prepareGuestFiles: nothing visible before commit; commit swaps both in", async () => {
    const paths = vmPaths(home, "web-01");
    const old = freshIds();
    await createPostInstallScript(paths, old);
    await writeSeed(paths, old);
    const oldEnv = await fs.readFile(paths.identityEnv, "utf8");
    const oldIso = await fs.readFile(paths.seedIso);

    const ids = regenerate(old, "disk");
    const prepared = await prepareGuestFiles(paths, "web-01", ids);
    expect(await fs.readFile(paths.identityEnv, "utf8")).toBe(oldEnv);
    expect(await fs.readFile(paths.seedIso)).toEqual(oldIso);
    expect(await temps(paths.shared)).toHaveLength(2);
    expect(await temps(paths.dir)).toHaveLength(1);

    await prepared.commit();
    await prepared.commit(); // idempotent
    await prepared.abort(); // no-op after commit
    expect(await fs.readFile(paths.script)).toEqual(await fs.readFile(SCRIPT_FILE));
    expect((await fs.stat(paths.script)).mode & 0o777).toBe(0o755);
    expect(await fs.readFile(paths.identityEnv, "utf8")).toBe(renderIdentityEnv("web-01", ids));
    expect(await isoExtract(paths.seedIso, "/meta-data")).toBe(renderSeed("web-01", ids).metaData);
    // The files on the share are the ones the seed installs in the guest.
    const userData = parse(await isoExtract(paths.seedIso, "/user-data"), { version: "1.1" }) as {
      write_files: { path: string; content: string }[];
    };
    const installed = Object.fromEntries(
      userData.write_files.map((f) => [f.path, Buffer.from(f.content, "base64").toString("utf8")]),
    );
    expect(installed).toEqual({
      [GUEST_SCRIPT_PATH]: await fs.readFile(paths.script, "utf8"),
      [GUEST_IDENTITY_ENV_PATH]: await fs.readFile(paths.identityEnv, "utf8"),
    });
    expect(await temps(paths.shared)).toEqual([]);
    expect(await temps(paths.dir)).toEqual([]);
  });

  test("prepareGuestFiles: abort leaves the old files and no temps", async () => {
    const paths = vmPaths(home, "web-01");
    const prepared = await prepareGuestFiles(paths, "web-01", freshIds(), {
      hostnameFrom: "machine-id",
    });
    await prepared.abort();
    await prepared.abort();
    await expect(prepared.commit()).rejects.toThrow(/commit after abort/);
    expect(await fs.readdir(paths.shared)).toEqual([]);
    expect(await fs.readdir(paths.dir)).toEqual(["shared"]);
  });

  test("prepareGuestFiles: a failing genisoimage leaves nothing behind; temps are named like atomic.ts temps", async () => {
    const paths = vmPaths(home, "web-01");
    await expect(
      prepareGuestFiles(paths, "web-01", freshIds(), {
        env: { ...process.env, GLINT_GENISOIMAGE: path.join(home, "nope") },
      }),
    ).rejects.toBeInstanceOf(MissingToolError);
    expect(await fs.readdir(paths.shared)).toEqual([]);
    expect(await fs.readdir(paths.dir)).toEqual(["shared"]);

    // Temps follow atomic.ts naming, so removeStaleTemps cleans up after a killed writer.
    const prepared = await prepareGuestFiles(paths, "web-01", freshIds());
    const names = [...(await temps(paths.shared)), ...(await temps(paths.dir))];
    expect(names).toHaveLength(3);
    for (const n of names) expect(n).toMatch(/^\..+\.tmp-\d+-[0-9a-f]{8}$/);
    await prepared.abort();
  });

  test("prepareGuestFiles refuses a VM name that does not match the paths", async () => {
    const paths = vmPaths(home, "web-01");
    await expect(prepareGuestFiles(paths, "web-02", freshIds())).rejects.toThrow(/does not match/);
  });
});
