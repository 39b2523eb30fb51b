/**
 * `glint backup` and `glint restore` on real files (qemu-img disks, swtpm
 * TPM state, OVMF variables): the archive and its manifest; a corrupted
 * byte, a truncated archive and a foreign archive are refused with nothing
 * left behind; a restore over an existing VM; values now held by another
 * VM; `--as-clone`; audit records; bad input.
 */
import { createHash } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/index.js";
import { readEkFingerprint } from "../../src/firmware/index.js";
import { IDENTIFIER_FIELDS } from "../../src/identity/model.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

let home: string;
let out: string;
let archive: string;

const g = (...args: string[]) => runCliOk([...args, "--home", home]);
const glint = (...args: string[]) => runCli([...args, "--home", home]);

/** Everything under `dir` (names relative to it), sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}

beforeAll(async () => {
  home = await tempDir("glint-backup-");
  out = await tempDir("glint-backup-out-");
  await g("create", "src", "--firmware", "uefi", "--tpm", "--disk-size", "32M");
  // An empty file (swtpm leaves some) is archived like any other.
  await fs.writeFile(path.join(home, "src", "shared", "empty"), "");
  archive = path.join(out, "src.glint.tar.gz");
  await g("backup", "src", "-o", archive, "--with-disk");
}, 120_000);

/** The tar stream inside the archive. */
function tarOf(file: Buffer): Buffer {
  return gunzipSync(file);
}

/** Expect `glint restore FILE` to fail with exit 1 in one line, leaving the home as it was. */
async function expectRefused(file: string, pattern: RegExp, ...extra: string[]): Promise<void> {
  const before = await tree(home);
  const r = await glint("restore", file, ...extra);
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  // Nothing left behind: no staging directory, no VM, no change.
  const after = (await tree(home)).filter((n) => !n.startsWith(".glint/vms/"));
  expect(after).toEqual(before.filter((n) => !n.startsWith(".glint/vms/")));
}

describe("glint backup", () => {
  it("writes one archive holding every file of the VM, with a manifest of sizes and sha256", async () => {
    const raw = tarOf(await fs.readFile(archive));
    const names: string[] = [];
    for (let off = 0; off + 512 <= raw.length; ) {
      const name = raw
        .subarray(off, off + 100)
        .toString("utf8")
        .replace(/\0.*$/s, "");
      if (name === "") break;
      const size = Number.parseInt(
        raw
          .subarray(off + 124, off + 136)
          .toString("utf8")
          .trim(),
        8,
      );
      names.push(name);
      if (name === "manifest.json") {
        const manifest = JSON.parse(raw.subarray(off + 512, off + 512 + size).toString("utf8"));
        expect(manifest).toMatchObject({
          format: "glint-backup",
          format_version: 1,
          glint_version: "0.1.0",
          schema_version: 1,
          vm: "src",
          live: false,
          with_disk: true,
        });
        for (const m of manifest.members as { path: string; size: number; sha256: string }[]) {
          const data = await fs.readFile(path.join(home, "src", m.path));
          expect(m.size).toBe(data.length);
          expect(m.sha256).toBe(createHash("sha256").update(data).digest("hex"));
        }
      }
      off += 512 + Math.ceil(size / 512) * 512;
    }
    expect(names.at(-1)).toBe("manifest.json");
    for (const f of [
      "identifiers.json",
      "config.json",
      "uefi-seed.fd",
      "uefi-instance.fd",
      "tpm/tpm2-00.permall",
      "shared/identity.env",
      "shared/set_identifiers.sh",
      "shared/empty",
      "seed.iso",
      "base.qcow2",
    ]) {
      expect(names).toContain(`vm/${f}`);
    }
    // Written atomically: no temp file is left next to it.
    expect(await fs.readdir(out)).toEqual(["src.glint.tar.gz"]);
  });

  it("without --with-disk leaves the disks out; -o DIR writes one archive per VM; --all", async () => {
    await g("create", "other");
    const dir = await tempDir("glint-backup-dir-");
    await g("backup", "--all", "-o", dir);
    const files = (await fs.readdir(dir)).sort();
    expect(files).toHaveLength(2);
    expect(files[0]).toMatch(/^other-.*\.glint\.tar\.gz$/);
    expect(files[1]).toMatch(/^src-.*\.glint\.tar\.gz$/);
    const tar = tarOf(await fs.readFile(path.join(dir, files[1] ?? ""))).toString("latin1");
    expect(tar).toContain("vm/identifiers.json");
    expect(tar).not.toContain("vm/base.qcow2");
    await g("rm", "other", "--yes");
  });

  it("refuses bad input in one line, writing nothing", async () => {
    const dir = await tempDir("glint-backup-bad-");
    const missing = await glint("backup", "nope", "-o", dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    const two = await glint("backup", "src", "nope", "-o", path.join(dir, "x.tar.gz"));
    expect(two.code).toBe(2);
    const noDir = await glint("backup", "src", "-o", path.join(dir, "no", "such", "x.tar.gz"));
    expect(noDir.code).toBe(2);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});

describe("glint restore refuses a bad archive, leaving nothing behind", () => {
  it("a corrupted byte in a member (the gzip stream intact) fails its checksum", async () => {
    const raw = Buffer.from(tarOf(await fs.readFile(archive)));
    const at = raw.indexOf("machine_id");
    expect(at).toBeGreaterThan(0);
    raw[at + 20] = raw[at + 20] === 0x61 ? 0x62 : 0x61;
    const bad = path.join(out, "corrupt-member.tar.gz");
    await fs.writeFile(bad, gzipSync(raw));
    await g("rm", "src", "--yes", "--keep-history");
    try {
      await expectRefused(bad, /identifiers\.json does not match its checksum/);
    } finally {
      await g("restore", archive);
    }
  });

  it("a corrupted byte in the compressed stream", async () => {
    const data = Buffer.from(await fs.readFile(archive));
    const i = Math.floor(data.length / 2);
    data[i] = (data[i] ?? 0) ^ 0xff;
    const bad = path.join(out, "corrupt-gzip.tar.gz");
    await fs.writeFile(bad, data);
    await expectRefused(bad, /corrupt-gzip\.tar\.gz: /, "--as", "fresh");
  });

  it("a truncated archive", async () => {
    const data = await fs.readFile(archive);
    const bad = path.join(out, "truncated.tar.gz");
    await fs.writeFile(bad, data.subarray(0, Math.floor(data.length * 0.7)));
    await expectRefused(bad, /truncated\.tar\.gz: /, "--as", "fresh");
    // Cut just before the manifest: every member whole, the manifest missing.
    const raw = tarOf(data);
    const cut = raw.lastIndexOf(Buffer.from("manifest.json\0"));
    await fs.writeFile(bad, gzipSync(raw.subarray(0, cut)));
    await expectRefused(bad, /no manifest\.json/, "--as", "fresh");
  });

  it("a foreign archive, and a file that is not an archive", async () => {
    const foreign = path.join(out, "foreign.tar.gz");
    const header = Buffer.alloc(512);
    header.write("etc/passwd", 0);
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write("00000000004\0", 124);
    header.write("00000000000\0", 136);
    header.write("        ", 148);
    header.write("0", 156);
    header.write("ustar\0" + "00", 257);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    const body = Buffer.alloc(512);
    body.write("root");
    await fs.writeFile(foreign, gzipSync(Buffer.concat([header, body, Buffer.alloc(1024)])));
    await expectRefused(foreign, /not a Glint backup/, "--as", "fresh");
    const text = path.join(out, "notes.txt");
    await fs.writeFile(text, "hello\n");
    await expectRefused(text, /notes\.txt: /, "--as", "fresh");
    await expectRefused(path.join(out, "absent.tar.gz"), /no such archive/, "--as", "fresh");
  });
});

describe("glint restore", () => {
  it("over an existing VM: refused without --force; with it the archived VM comes back and the current identity goes to history/", async () => {
    const archived = await readIds(home, "src");
    const ek = await readEkFingerprint(path.join(home, "src", "tpm"));
    await g("nuke", "src", "--yes");
    const nuked = await readIds(home, "src");
    expect(nuked.vm_uuid).not.toBe(archived.vm_uuid);

    const refused = await glint("restore", archive);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/VM "src" exists; give --force/);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(await readIds(home, "src")).toEqual(nuked);

    const r = JSON.parse(await g("restore", archive, "--force", "--json"));
    expect(r.vm).toBe("src");
    expect(await readIds(home, "src")).toEqual(archived);
    expect(await readEkFingerprint(path.join(home, "src", "tpm"))).toBe(ek);
    const history = JSON.parse(await g("history", "src", "--json")) as {
      identifiers: { vm_uuid: string } | null;
    }[];
    expect(history.map((h) => h.identifiers?.vm_uuid)).toContain(nuked.vm_uuid);
    expect(existsSync(r.replaced)).toBe(true);
  });

  it("refuses when a value of the archive now belongs to another VM, naming it", async () => {
    const r = await glint("restore", archive, "--as", "copy");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/now belongs to VM "src"/);
    expect(existsSync(path.join(home, "copy"))).toBe(false);
  });

  it("--as-clone restores disk and config under a new name with a distinct identity and TPM", async () => {
    const original = await readIds(home, "src");
    await g("restore", archive, "--as", "clone", "--as-clone");
    const clone = await readIds(home, "clone");
    for (const f of IDENTIFIER_FIELDS) expect(clone[f], f).not.toBe(original[f]);
    expect(await readEkFingerprint(path.join(home, "clone", "tpm"))).not.toBe(
      await readEkFingerprint(path.join(home, "src", "tpm")),
    );
    expect(JSON.parse(await fs.readFile(path.join(home, "clone", "config.json"), "utf8"))).toEqual(
      JSON.parse(await fs.readFile(path.join(home, "src", "config.json"), "utf8")),
    );
    expect(existsSync(path.join(home, "clone", "base.qcow2"))).toBe(true);
    // The original's identity is nowhere in the clone.
    const history = await fs.readdir(path.join(home, "clone", "history")).catch(() => []);
    for (const h of history.filter((n) => n.endsWith(".json"))) {
      const text = await fs.readFile(path.join(home, "clone", "history", h), "utf8");
      expect(text).not.toContain(original.vm_uuid);
    }
    const usage = await glint("restore", archive, "--as-clone");
    expect(usage.code).toBe(2);
    // A clone restores the disks: an archive without them is refused, nothing written.
    const noDisk = path.join(out, "no-disk.glint.tar.gz");
    await g("backup", "src", "-o", noDisk);
    await expectRefused(noDisk, /holds no disks/, "--as", "clone2", "--as-clone");
  });

  it("backup and restore are in the audit log", async () => {
    const records = JSON.parse(await g("audit", "--json")) as AuditRecord[];
    const ops = records.map((r) => `${r.operation} ${r.vm}`);
    expect(ops).toContain("backup src");
    expect(ops).toContain("restore src");
    expect(ops).toContain("restore-clone clone");
    const verify = await glint("audit", "verify");
    expect(verify.code, verify.stderr).toBe(0);
  });
});
