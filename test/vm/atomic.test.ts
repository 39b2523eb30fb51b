/** Atomic file replacement: content, no leftovers, modes, and readers never see a partial file. */
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import { preparedChange } from "../../src/txn/change.js";
import {
  copyFileAtomic,
  fsyncDir,
  removeStaleTemps,
  writeFileAtomic,
} from "../../src/vm/atomic.js";
import { isFile } from "../../src/vm/fsutil.js";
import { tempDir } from "../support/tmp.js";

let dir: string;
beforeEach(async () => {
  dir = await tempDir("glint-atomic-");
});

const modeOf = async (f: string) => (await fs.stat(f)).mode & 0o777;

describe("writeFileAtomic", () => {
  it("creates a file and replaces its content, leaving no temp files", async () => {
    const target = path.join(dir, "identifiers.json");
    await writeFileAtomic(target, "first\n");
    expect(await fs.readFile(target, "utf8")).toBe("first\n");
    await writeFileAtomic(target, Buffer.from("second"));
    expect(await fs.readFile(target, "utf8")).toBe("second");
    await writeFileAtomic(target, "");
    expect(await fs.readFile(target, "utf8")).toBe("");
    expect(await fs.readdir(dir)).toEqual(["identifiers.json"]);
  });

  it("replaces by rename: the old inode is not rewritten in place", async () => {
    const target = path.join(dir, "f");
    await writeFileAtomic(target, "old");
    const held = await fs.open(target, "r");
    try {
      await writeFileAtomic(target, "new content");
      // A reader that opened the old file still sees the old content in full.
      expect((await held.readFile("utf8")).toString()).toBe("old");
    } finally {
      await held.close();
    }
    expect(await fs.readFile(target, "utf8")).toBe("new content");
  });

  it("respects the requested mode (default 0644 minus umask)", async () => {
    const umask = process.umask();
    const a = path.join(dir, "a");
    await writeFileAtomic(a, "x");
    expect(await modeOf(a)).toBe(0o644 & ~umask);
    const secret = path.join(dir, "secret");
    await writeFileAtomic(secret, "k", { mode: 0o600 });
    expect(await modeOf(secret)).toBe(0o600);
    // Replacing a 0644 file with mode 0600 gives 0600 (the new file's mode wins).
    await writeFileAtomic(a, "y", { mode: 0o600 });
    expect(await modeOf(a)).toBe(0o600);
    const script = path.join(dir, "set_identifiers.sh");
    await writeFileAtomic(script, "#!/bin/sh\n", { mode: 0o755 });
    expect(await modeOf(script)).toBe(0o755 & ~umask);
  });

  it("fails cleanly when the directory does not exist", async () => {
    await expect(writeFileAtomic(path.join(dir, "missing", "f"), "x")).rejects.toMatchObject({
      code: "ENOENT",
    });
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("fails cleanly (old content kept, no temp left) when the target is a directory", async () => {
    const target = path.join(dir, "d");
    await fs.mkdir(target);
    await fs.writeFile(path.join(target, "inside"), "keep");
    await expect(writeFileAtomic(target, "x")).rejects.toThrow();
    expect(await fs.readdir(dir)).toEqual(["d"]);
    expect(await fs.readFile(path.join(target, "inside"), "utf8")).toBe("keep");
  });

  it("concurrent readers only ever see a complete old or new version", async () => {
    const target = path.join(dir, "big");
    const size = 512 * 1024;
    const versions = ["a", "b", "c"].map((c) => c.repeat(size));
    await writeFileAtomic(target, versions[0] ?? "");
    let writing = true;
    let reads = 0;
    const reader = (async () => {
      while (writing) {
        const got = await fs.readFile(target, "utf8");
        reads++;
        expect(got.length).toBe(size);
        expect(versions).toContain(got);
      }
    })();
    for (let i = 0; i < 30; i++) await writeFileAtomic(target, versions[i % 3] ?? "");
    writing = false;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(await fs.readdir(dir)).toEqual(["big"]);
  });

  it("concurrent writers leave exactly one of the versions and no temp files", async () => {
    const target = path.join(dir, "f");
    const versions = Array.from({ length: 20 }, (_, i) => `version ${i}\n`.repeat(1000));
    await Promise.all(versions.map((v) => writeFileAtomic(target, v)));
    expect(versions).toContain(await fs.readFile(target, "utf8"));
    expect(await fs.readdir(dir)).toEqual(["f"]);
  });
});

describe("copyFileAtomic", () => {
  it("copies over an existing target, leaving no temp files", async () => {
    const seed = path.join(dir, "uefi-seed.fd");
    const inst = path.join(dir, "uefi-instance.fd");
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));
    await fs.writeFile(seed, bytes);
    await fs.writeFile(inst, "used NVRAM");
    await copyFileAtomic(seed, inst);
    expect(Buffer.compare(await fs.readFile(inst), bytes)).toBe(0);
    expect((await fs.readdir(dir)).sort()).toEqual(["uefi-instance.fd", "uefi-seed.fd"]);
  });

  it("keeps the target and leaves nothing behind when the source is missing", async () => {
    const inst = path.join(dir, "uefi-instance.fd");
    await fs.writeFile(inst, "old");
    await expect(copyFileAtomic(path.join(dir, "nope"), inst)).rejects.toMatchObject({
      code: "ENOENT",
    });
    expect(await fs.readFile(inst, "utf8")).toBe("old");
    expect(await fs.readdir(dir)).toEqual(["uefi-instance.fd"]);
  });
});

describe("removeStaleTemps", () => {
  it("removes temp files of dead writers only", async () => {
    const child = spawn("true", [], { stdio: "ignore" });
    const dead = child.pid ?? 0;
    await new Promise((r) => child.once("exit", r));
    const deadTemp = `.identifiers.json.tmp-${dead}-0123abcd`;
    const liveTemp = `.identifiers.json.tmp-${process.pid}-89abcdef`;
    const names = [deadTemp, liveTemp, "identifiers.json", ".other.tmp-x", "notes.tmp-1-deadbeef"];
    for (const n of names) await fs.writeFile(path.join(dir, n), "x");
    await removeStaleTemps(dir);
    expect((await fs.readdir(dir)).sort()).toEqual(names.filter((n) => n !== deadTemp).sort());
  });

  it("ignores a missing directory", async () => {
    await expect(removeStaleTemps(path.join(dir, "missing"))).resolves.toBeUndefined();
  });
});

describe("fsyncDir", () => {
  it("syncs a directory and rejects a non-directory", async () => {
    await expect(fsyncDir(dir)).resolves.toBeUndefined();
    const f = path.join(dir, "f");
    await fs.writeFile(f, "x");
    await expect(fsyncDir(f)).rejects.toMatchObject({ code: "ENOTDIR" });
  });
});

describe("isFile", () => {
  it("is true for regular files (also through a symlink), false otherwise", async () => {
    const file = path.join(dir, "f");
    await fs.writeFile(file, "x");
    await fs.symlink(file, path.join(dir, "link"));
    expect(await isFile(file)).toBe(true);
    expect(await isFile(path.join(dir, "link"))).toBe(true);
    expect(await isFile(dir)).toBe(false);
    expect(await isFile(path.join(dir, "missing"))).toBe(false);
    expect(await isFile(path.join(file, "below-a-file"))).toBe(false);
  });
});

describe("preparedChange", () => {
  function counting(commit?: (mark: () => void) => Promise<void>) {
    const calls = { commit: 0, abort: 0 };
    const change = preparedChange({
      what: "test change",
      async commit(mark) {
        calls.commit++;
        await commit?.(mark);
      },
      async abort() {
        calls.abort++;
      },
    });
    return { calls, change };
  }

  it("commit runs once; abort after commit does nothing", async () => {
    const { calls, change } = counting();
    await change.commit();
    await change.commit();
    await change.abort();
    expect(calls).toEqual({ commit: 1, abort: 0 });
  });

  it("abort runs once; commit after abort is a GlintError", async () => {
    const { calls, change } = counting();
    await change.abort();
    await change.abort();
    const err = await change.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlintError);
    expect((err as Error).message).toBe("test change was already aborted: commit after abort");
    expect(calls).toEqual({ commit: 0, abort: 1 });
  });

  it("a commit that fails before its point of no return stays prepared", async () => {
    let fail = true;
    const { calls, change } = counting(async () => {
      if (fail) throw new Error("boom");
    });
    await expect(change.commit()).rejects.toThrow("boom");
    fail = false;
    await change.commit(); // may be retried
    expect(calls).toEqual({ commit: 2, abort: 0 });

    const second = counting(async () => {
      throw new Error("boom");
    });
    await expect(second.change.commit()).rejects.toThrow("boom");
    await second.change.abort(); // or cleaned up
    expect(second.calls).toEqual({ commit: 1, abort: 1 });
  });

  it("a commit that fails after markCommitted counts as committed", async () => {
    const { calls, change } = counting(async (mark) => {
      mark();
      throw new Error("late");
    });
    await expect(change.commit()).rejects.toThrow("late");
    await change.commit();
    await change.abort();
    expect(calls).toEqual({ commit: 1, abort: 0 });
  });
});

describe("symlinks and modes", () => {
  it("writeFileAtomic replaces a symlink at the target instead of writing through it", async () => {
    const victim = path.join(dir, "victim");
    await fs.writeFile(victim, "untouched", { mode: 0o600 });
    const target = path.join(dir, "identifiers.json");
    await fs.symlink(victim, target);
    await writeFileAtomic(target, "new");
    expect((await fs.lstat(target)).isSymbolicLink()).toBe(false);
    expect(await fs.readFile(target, "utf8")).toBe("new");
    expect(await fs.readFile(victim, "utf8")).toBe("untouched");
  });

  it("copyFileAtomic keeps the source's mode", async () => {
    const source = path.join(dir, "tpm-state");
    await fs.writeFile(source, "state", { mode: 0o600 });
    await fs.chmod(source, 0o600);
    const target = path.join(dir, "copy");
    await copyFileAtomic(source, target);
    expect(await modeOf(target)).toBe(0o600);
  });

  it("copyFileAtomic refuses a symlinked source unless told to follow it", async () => {
    const secret = path.join(dir, "secret");
    await fs.writeFile(secret, "SECRET", { mode: 0o600 });
    const seed = path.join(dir, "uefi-seed.fd");
    await fs.symlink(secret, seed);
    const inst = path.join(dir, "uefi-instance.fd");
    await expect(copyFileAtomic(seed, inst)).rejects.toThrow(/uefi-seed\.fd is a symbolic link/);
    expect((await fs.readdir(dir)).sort()).toEqual(["secret", "uefi-seed.fd"]);
    await copyFileAtomic(seed, inst, { followSymlinks: true });
    expect(await fs.readFile(inst, "utf8")).toBe("SECRET");
  });
});
