import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { beforeEach, describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import {
  createBlankDisk,
  createOverlay,
  flattenImage,
  imageInfo,
  relativeBackingPath,
} from "../../src/qemu/img.js";
import { tempDir } from "../support/tmp.js";

const run = promisify(execFile);

let dir: string;
beforeEach(async () => {
  dir = await tempDir("glint-img-");
});

/** A qcow2 base image whose first MiB is random data (also returned). */
async function makeBase(file: string): Promise<Buffer> {
  const data = randomBytes(1024 * 1024);
  const raw = `${file}.raw`;
  await writeFile(raw, Buffer.concat([data, Buffer.alloc(3 * 1024 * 1024)]));
  await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, file]);
  return data;
}

/** The guest-visible bytes of an image (through its backing chain). */
async function guestBytes(image: string, out: string): Promise<Buffer> {
  await run("qemu-img", ["convert", "-q", "-O", "raw", image, out]);
  return readFile(out);
}

describe("relativeBackingPath", () => {
  it("is relative to the overlay's directory and never looks like a protocol", () => {
    expect(relativeBackingPath("/h/vm/base.qcow2", "/h/vm/overlay.qcow2")).toBe("base.qcow2");
    expect(relativeBackingPath("/h/images/b.qcow2", "/h/vm/overlay.qcow2")).toBe(
      "../images/b.qcow2",
    );
    expect(relativeBackingPath("/h/vm/nbd:x.qcow2", "/h/vm/o.qcow2")).toBe("./nbd:x.qcow2");
    expect(relativeBackingPath("/h/vm:1/b.qcow2", "/h/o.qcow2")).toBe("./vm:1/b.qcow2");
  });
});

describe("createBlankDisk", () => {
  it("creates a qcow2 image of the given size, atomically", async () => {
    const file = path.join(dir, "disk,1.qcow2");
    await createBlankDisk(file, "64M");
    const info = await imageInfo(file);
    expect(info.format).toBe("qcow2");
    expect(info.virtualSize).toBe(64 * 1024 * 1024);
    expect(info.backingFilename).toBeUndefined();
    expect((await readdir(dir)).filter((n) => n.includes(".tmp-"))).toEqual([]);
    await createBlankDisk(file, 1024 * 1024);
    expect((await imageInfo(file)).virtualSize).toBe(1024 * 1024);
  });

  it("rejects bad sizes before running qemu-img", async () => {
    for (const size of ["0", "8X", "-1G", "1G,x", 0, 1.5]) {
      await expect(
        createBlankDisk(path.join(dir, "d.qcow2"), size),
        String(size),
      ).rejects.toBeInstanceOf(GlintError);
    }
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("createOverlay", () => {
  it("records the base relatively, so the VM directory can be moved", async () => {
    const vmDir = path.join(dir, "home", "vm,one:x");
    await mkdir(vmDir, { recursive: true });
    const base = path.join(vmDir, "base.qcow2");
    const overlay = path.join(vmDir, "overlay.qcow2");
    const data = await makeBase(base);
    await createOverlay(base, overlay);

    const info = await imageInfo(overlay);
    expect(info.format).toBe("qcow2");
    expect(info.backingFilename).toBe("base.qcow2");
    expect(info.backingFormat).toBe("qcow2");
    expect(info.virtualSize).toBe(4 * 1024 * 1024);
    expect((await readdir(vmDir)).sort()).toEqual([
      "base.qcow2",
      "base.qcow2.raw",
      "overlay.qcow2",
    ]);

    // Move the whole store somewhere else: the overlay still reads the base.
    const moved = path.join(dir, "elsewhere", "renamed vm");
    await mkdir(path.dirname(moved), { recursive: true });
    await rename(vmDir, moved);
    const movedOverlay = path.join(moved, "overlay.qcow2");
    const movedInfo = await imageInfo(movedOverlay);
    expect(movedInfo.backingFilename).toBe("base.qcow2");
    expect(movedInfo.fullBackingFilename).toBe(path.join(moved, "base.qcow2"));
    await run("qemu-img", ["check", "-q", movedOverlay]);
    const bytes = await guestBytes(movedOverlay, path.join(dir, "out.raw"));
    expect(bytes.subarray(0, data.length).equals(data)).toBe(true);
  });

  it("works with a base in another directory", async () => {
    const images = path.join(dir, "images");
    const vm = path.join(dir, "vms", "a");
    await mkdir(images, { recursive: true });
    await mkdir(vm, { recursive: true });
    const data = await makeBase(path.join(images, "debian.qcow2"));
    await createOverlay(path.join(images, "debian.qcow2"), path.join(vm, "overlay.qcow2"));
    expect((await imageInfo(path.join(vm, "overlay.qcow2"))).backingFilename).toBe(
      "../../images/debian.qcow2",
    );
    const bytes = await guestBytes(path.join(vm, "overlay.qcow2"), path.join(dir, "o.raw"));
    expect(bytes.subarray(0, data.length).equals(data)).toBe(true);
  });

  it("replaces an existing overlay with a fresh one", async () => {
    const base = path.join(dir, "base.qcow2");
    const overlay = path.join(dir, "overlay.qcow2");
    await makeBase(base);
    await writeFile(overlay, "old junk");
    await createOverlay(base, overlay);
    expect((await imageInfo(overlay)).backingFilename).toBe("base.qcow2");
  });

  it("fails with a one-line GlintError and leaves no temp file", async () => {
    const err = await createOverlay(
      path.join(dir, "missing.qcow2"),
      path.join(dir, "o.qcow2"),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlintError);
    expect((err as Error).message).toMatch(/does not exist/);
    // A base that is not qcow2: qemu-img itself refuses.
    await writeFile(path.join(dir, "notqcow.qcow2"), "plain text");
    const err2 = await createOverlay(
      path.join(dir, "notqcow.qcow2"),
      path.join(dir, "o.qcow2"),
    ).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(GlintError);
    expect((err2 as Error).message).toMatch(/^qemu-img create failed: /);
    expect((err2 as Error).message).not.toContain("\n");
    expect((await readdir(dir)).sort()).toEqual(["notqcow.qcow2"]);
  });
});

describe("imageInfo", () => {
  it("reports a missing image as a one-line GlintError", async () => {
    const err = await imageInfo(path.join(dir, "nope.qcow2")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlintError);
    expect((err as Error).message).toMatch(/^qemu-img info failed: .*nope\.qcow2/);
    expect((err as Error).message).not.toContain("\n");
  });

  it("reads raw images too", async () => {
    const raw = path.join(dir, "x.img");
    await run("qemu-img", ["create", "-q", "-f", "raw", raw, "2M"]);
    const info = await imageInfo(raw);
    expect(info).toMatchObject({ format: "raw", virtualSize: 2 * 1024 * 1024, filename: raw });
  });
});

describe("self-contained images", () => {
  it("imageInfo reports a backing file and an external data file", async () => {
    const secret = path.join(dir, "secret");
    await writeFile(secret, Buffer.alloc(64 * 1024, 0x41));
    const backed = path.join(dir, "backed.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", backed]);
    expect((await imageInfo(backed)).backingFilename).toBe(secret);
    const withData = path.join(dir, "data.qcow2");
    await run("qemu-img", [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-o",
      `data_file=${secret},data_file_raw=on`,
      withData,
      "64K",
    ]);
    expect((await imageInfo(withData)).dataFile).toBe(secret);
    expect(
      (await imageInfo(path.join(dir, "..", path.basename(dir), "backed.qcow2"))).dataFile,
    ).toBeUndefined();
  });

  it("flattenImage writes a self-contained copy with the same guest bytes", async () => {
    const base = path.join(dir, "base.qcow2");
    const data = await makeBase(base);
    const overlay = path.join(dir, "overlay.qcow2");
    await createOverlay(base, overlay);
    const flat = path.join(dir, "flat.qcow2");
    await flattenImage(overlay, flat);
    const info = await imageInfo(flat);
    expect(info.format).toBe("qcow2");
    expect(info.backingFilename).toBeUndefined();
    const bytes = await guestBytes(flat, path.join(dir, "flat.raw"));
    expect(Buffer.compare(bytes.subarray(0, data.length), data)).toBe(0);
    expect((await readdir(dir)).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });
});
