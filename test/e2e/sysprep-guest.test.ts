/**
 * The tiny test guest boots with a sysprepped overlay of the reference image
 * attached (virtio) and reads, from inside, the new PARTUUID of the root
 * partition (from the GPT on /dev/vda), the root filesystem's UUID (its
 * superblock, and findfs resolving it),
 * and the machine-id and hostname (mounting the ext4 root read-only, which
 * also shows the guest kernel accepts metadata_csum_seed).
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sysprepImage } from "../../src/sysprep/index.js";
import { diskImage } from "../support/disk-image.js";
import { overlay } from "../support/disk-read.js";
import { identityFromSeed } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { bootGuest, guestKernelArgs } from "./guest/runner.js";

const HOOK = `#!/bin/sh
d=/dev/vda
n=0
while [ ! -b "$d"3 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
# GPT partition entry 3: LBA 2 + 2 * 128 bytes; its unique GUID at +16.
set -- $(od -An -v -tx1 -j $((1024 + 256 + 16)) -N 16 "$d")
echo "GLINT:partuuid3=$4$3$2$1-$6$5-$8$7-$9\${10}-\${11}\${12}\${13}\${14}\${15}\${16}"
# The ext4 superblock's UUID (offset 1024 + 104), and what findfs resolves it to.
set -- $(od -An -v -tx1 -j 1128 -N 16 "$d"3)
u="$1$2$3$4-$5$6-$7$8-$9\${10}-\${11}\${12}\${13}\${14}\${15}\${16}"
echo "GLINT:fsuuid3=$u"
echo "GLINT:findfs=$(findfs UUID="$u")"
mkdir -p /mnt/root
if mount -o ro -t ext4 "$d"3 /mnt/root; then
  echo "GLINT:machine_id=$(cat /mnt/root/etc/machine-id)"
  echo "GLINT:hostname=$(cat /mnt/root/etc/hostname)"
  umount /mnt/root
else
  echo "GLINT:mount=failed"
fi
`;

let dir: string;
let guest: TinyGuest;
beforeAll(async () => {
  dir = await tempDir("glint-e2e-sysprep-");
  guest = await tinyGuest();
}, 300_000);
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe("a sysprepped overlay seen from inside a guest", () => {
  it("shows the new PARTUUID, filesystem UUID, machine-id and hostname", async () => {
    const img = await diskImage({ table: "gpt" });
    const ov = path.join(dir, "vm.qcow2");
    await overlay(img.qcow2, ov);
    const id = identityFromSeed("guest-view");
    const report = await sysprepImage(ov, { vmName: "guest-view", identifiers: id });
    expect(report.status).toBe("applied");
    const share = path.join(dir, "share");
    await fs.mkdir(share);
    await fs.writeFile(path.join(share, "check.sh"), HOOK, { mode: 0o755 });
    const result = await bootGuest({
      qemuArgs: [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "256",
        ...guestKernelArgs(guest.kernel, guest.initrd, "glint.hook=/mnt/glint/check.sh"),
        "-drive",
        `file=${ov},if=virtio,format=qcow2,snapshot=on`,
        "-virtfs",
        `local,path=${share},mount_tag=glint,security_model=none,readonly=on`,
      ],
      timeoutMs: 240_000,
    });
    const mk = result.markers;
    expect(mk.partuuid3?.[0]).toBe(id.partition_uuid);
    expect(mk.fsuuid3?.[0]).toBe(id.filesystem_uuid);
    expect(mk.findfs?.[0]).toBe("/dev/vda3");
    expect(mk.machine_id?.[0]).toBe(id.machine_id);
    expect(mk.hostname?.[0]).toBe("guest-view");
  }, 300_000);
});
