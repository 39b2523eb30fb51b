/** One VM's files: reading with clear errors, history that never overwrites. */
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { errorLine } from "../../src/cli/advice.js";
import { GlintError } from "../../src/errors.js";
import { parseIdentifiers, SystemIdentifiers } from "../../src/identity/model.js";
import { vmPaths } from "../../src/vm/layout.js";
import {
  archiveFile,
  listHistory,
  listVmNames,
  readConfig,
  readIdentifiers,
  writeIdentifiers,
} from "../../src/vm/store.js";
import { FIXTURES, fixture } from "../support/paths.js";
import { tempDir } from "../support/tmp.js";

let home: string;
beforeEach(async () => {
  home = await tempDir("glint-store-");
});

const seedIds = parseIdentifiers(fixture("seed-identifiers.json"));

describe("readIdentifiers", () => {
  it("returns undefined for a VM without identifiers", async () => {
    expect(await readIdentifiers(vmPaths(home, "none"))).toBeUndefined();
  });

  it("reads the seed fixture from disk and writes it back in the current format", async () => {
    const p = vmPaths(home, "seed");
    await fs.mkdir(p.dir);
    await fs.copyFile(path.join(FIXTURES, "seed-identifiers.json"), p.identifiers);
    const ids = await readIdentifiers(p);
    expect(ids).toEqual(seedIds);
    await writeIdentifiers(p, seedIds);
    expect(await fs.readFile(p.identifiers, "utf8")).toBe(SystemIdentifiers.toJSON(seedIds));
    expect(await readIdentifiers(p)).toEqual(seedIds);
  });

  it.each([
    ["truncated JSON", '{"vm_uuid": "6f1c', /not valid JSON/],
    ["the seed's invalid example", null, /field "machine_id" must be 32 lowercase hex/],
  ])("names the file for %s", async (_what, content, pattern) => {
    const p = vmPaths(home, "bad");
    await fs.mkdir(p.dir);
    if (content === null)
      await fs.copyFile(path.join(FIXTURES, "seed-invalid-machine-id.json"), p.identifiers);
    else await fs.writeFile(p.identifiers, content);
    const before = await fs.readFile(p.identifiers);
    const err = await readIdentifiers(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlintError);
    const msg = (err as GlintError).message;
    expect(msg.startsWith(`${p.identifiers}: `)).toBe(true);
    expect(msg).toMatch(pattern);
    expect(errorLine(err as GlintError)).toContain(`glint create bad --force`);
    expect(msg).not.toContain("\n");
    expect(Buffer.compare(await fs.readFile(p.identifiers), before)).toBe(0);
  });
});

describe("history", () => {
  it("archives copies without overwriting and lists them oldest first, corrupt ones too", async () => {
    const p = vmPaths(home, "vm");
    await writeIdentifiers(p, seedIds);
    const a = await archiveFile(p, p.identifiers, "disk");
    const b = await archiveFile(p, p.identifiers, "disk");
    await fs.writeFile(p.identifiers, "{ corrupt");
    const c = await archiveFile(p, p.identifiers, "fresh");
    expect(new Set([a, b, c]).size).toBe(3);
    expect(await archiveFile(p, path.join(p.dir, "missing.json"), "x")).toBeUndefined();
    const h = await listHistory(p);
    expect(h.map((e) => e.reason)).toEqual(["disk", "disk", "fresh"]);
    expect(h[0]?.identifiers).toEqual(seedIds);
    expect(h[2]?.identifiers).toHaveProperty("error");
    expect(await fs.readFile(c ?? "", "utf8")).toBe("{ corrupt");
    for (const e of h) expect(Number.isNaN(Date.parse(e.archivedAt))).toBe(false);
  });

  it("is empty for a VM without history", async () => {
    expect(await listHistory(vmPaths(home, "vm"))).toEqual([]);
  });
});

describe("listVmNames", () => {
  it("lists only directories with valid VM names, sorted", async () => {
    for (const d of ["b", "a", "Bad", ".glint", "with space"]) await fs.mkdir(path.join(home, d));
    await fs.writeFile(path.join(home, "c"), "a file, not a VM");
    expect(await listVmNames(home)).toEqual(["a", "b"]);
    expect(await listVmNames(path.join(home, "missing"))).toEqual([]);
  });
});

describe("reading without following symlinks", () => {
  it("archiveFile keeps the mode of what it archives", async () => {
    const p = vmPaths(home, "modes");
    await fs.mkdir(p.dir);
    await writeIdentifiers(p, seedIds);
    await fs.chmod(p.identifiers, 0o600);
    const archived = await archiveFile(p, p.identifiers, "fresh");
    expect(archived).toBeDefined();
    expect((await fs.stat(archived ?? "")).mode & 0o7777).toBe(0o600);
  });

  it("archiveFile refuses a symlink and copies nothing", async () => {
    const p = vmPaths(home, "link");
    await fs.mkdir(p.dir);
    const secret = path.join(home, "secret");
    await fs.writeFile(secret, "SECRET", { mode: 0o600 });
    await fs.symlink(secret, p.uefiInstance);
    await expect(archiveFile(p, p.uefiInstance, "reset-uefi")).rejects.toThrow(
      /uefi-instance\.fd is a symbolic link/,
    );
    expect(await fs.readdir(p.history).catch(() => [])).toEqual([]);
  });

  it("readIdentifiers and readConfig refuse a symlink; listHistory marks a symlinked entry unreadable", async () => {
    const p = vmPaths(home, "link");
    await fs.mkdir(path.join(p.dir, "history"), { recursive: true });
    const real = path.join(home, "real.json");
    await fs.writeFile(real, SystemIdentifiers.toJSON(seedIds));
    await fs.symlink(real, p.identifiers);
    await fs.symlink(real, p.config);
    await expect(readIdentifiers(p)).rejects.toThrow(/identifiers\.json is a symbolic link/);
    await expect(readConfig(p)).rejects.toThrow(/config\.json is a symbolic link/);
    await fs.symlink(
      real,
      path.join(p.history, "2026-01-01T00-00-00.000Z_fresh_identifiers-abcdef.json"),
    );
    const [entry] = await listHistory(p);
    expect(entry?.identifiers).toMatchObject({ error: expect.stringMatching(/symbolic link/) });
  });

  it("a FIFO in place of identifiers.json is refused at once (never blocks)", async () => {
    const p = vmPaths(home, "fifo");
    await fs.mkdir(p.dir);
    execFileSync("mkfifo", [p.identifiers]);
    await expect(readIdentifiers(p)).rejects.toThrow(/not a regular file/);
  });

  it("listVmNames lists symlinked VM directories only when asked", async () => {
    await fs.mkdir(path.join(home, "real"));
    await fs.mkdir(path.join(home, "elsewhere"));
    await fs.symlink(path.join(home, "elsewhere"), path.join(home, "linked"));
    expect(await listVmNames(home)).toEqual(["elsewhere", "real"]);
    expect(await listVmNames(home, { includeSymlinks: true })).toEqual([
      "elsewhere",
      "linked",
      "real",
    ]);
  });
});

describe("a UTF-8 byte order mark", () => {
  it("is accepted at the start of identifiers.json and config.json", async () => {
    const p = vmPaths(home, "bom");
    await fs.mkdir(p.dir);
    await fs.writeFile(p.identifiers, `\uFEFF${SystemIdentifiers.toJSON(seedIds)}`);
    await fs.writeFile(p.config, '\uFEFF{"memory_mb": 1024}\n');
    expect(await readIdentifiers(p)).toEqual(seedIds);
    expect((await readConfig(p))?.memory_mb).toBe(1024);
  });
});
