/**
 * Offline edits of a test VM's overlay with the sysprep engine's own parts
 * (qemu-storage-daemon FUSE export + debugfs by offset): here, sealing it as a golden
 * image is sealed, with an empty /etc/machine-id and no /etc/hostname.
 */
import { promises as fs } from "node:fs";
import { applyEdits, isReg, listDirs } from "../../../src/sysprep/ext4.js";
import { ImageExport } from "../../../src/sysprep/fuse-export.js";
import { makeWorkDir } from "../../../src/sysprep/image.js";
import { extDevice, readLayout } from "../../../src/sysprep/layout.js";

/**
 * Make `/etc/machine-id` of the image's ext root an empty file (mode 0444)
 * and remove `/etc/hostname`, so that systemd looks for both in its
 * credentials.
 */
export async function sealImage(image: string): Promise<void> {
  const workDir = await makeWorkDir();
  let ex: ImageExport | undefined;
  try {
    ex = await ImageExport.start(image, workDir, { format: "qcow2", readOnly: false });
    const layout = await readLayout(ex.diskPath, (await fs.stat(ex.diskPath)).size);
    const root = layout.parts.find((p) => p.fs.type === "ext");
    if (!root) throw new Error(`${image}: no ext root filesystem`);
    const file = extDevice(root);
    const etc = (await listDirs(file, ["/etc"], { workDir })).get("/etc") ?? [];
    const entry = etc.find((e) => e.name === "machine-id");
    if (!entry || !isReg(entry)) throw new Error(`${image}: no /etc/machine-id`);
    const hostname = etc.find((e) => e.name === "hostname");
    if (!hostname || !isReg(hostname)) throw new Error(`${image}: no /etc/hostname`);
    await applyEdits(
      file,
      [
        {
          op: "put",
          path: "/etc/machine-id",
          data: Buffer.alloc(0),
          mode: 0o100444,
          uid: 0,
          gid: 0,
          replace: true,
        },
        { op: "rm", path: "/etc/hostname" },
      ],
      { workDir },
    );
  } finally {
    await ex?.stop();
    await fs.rm(workDir, { recursive: true, force: true });
  }
}
