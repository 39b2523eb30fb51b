/**
 * The OpenStack config drive: built with the real genisoimage, extracted with
 * isoinfo (no mount), and read by the host's own cloud-init code
 * (cloudinit.sources.helpers.openstack.ConfigDriveReader.read_v2 and
 * convert_net_json), which must find Glint's instance-id, hostname and MAC.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import {
  buildConfigDrive,
  buildConfigDriveMetaData,
  buildConfigDriveNetworkData,
  CONFIG_DRIVE_VERSIONS,
  configDriveFiles,
} from "../../src/guest/index.js";
import { runCliOk } from "../support/cli.js";
import { runOk } from "../support/exec.js";
import { freshIds, regenerate } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";

/** cloud-init's Python: the system interpreter, where Debian's cloud-init package lives. */
const PYTHON = "/usr/bin/python3";

const READER = `
import json, sys
from cloudinit.sources.helpers import openstack
r = openstack.ConfigDriveReader(sys.argv[1]).read_v2()
md = r["metadata"]
# The guest's NICs by MAC (argv[2]); a drive naming another MAC raises "Unable to find a system nic".
net = openstack.convert_net_json(r.get("networkdata"), known_macs={sys.argv[2]: "eth0"})
print(json.dumps({
  "instance_id": md["instance-id"],
  "local_hostname": md["local-hostname"],
  "name": md["name"],
  "random_seed_bytes": len(md["random_seed"]),
  "public_keys": md["public_keys"],
  "userdata_head": r["userdata"].decode().split("\\n")[0] if isinstance(r["userdata"], bytes) else r["userdata"].split("\\n")[0],
  "macs": [c.get("mac_address") for c in net["config"] if c.get("type") == "physical"],
  "nics": [c.get("name") for c in net["config"] if c.get("type") == "physical"],
  "subnets": [s["type"] for c in net["config"] for s in c.get("subnets", [])],
}))
`;

/** Every file of the ISO into `dir`, with isoinfo (Rock Ridge names), no mount. */
async function extractIso(iso: string, dir: string): Promise<string[]> {
  const listing = await runOk("isoinfo", ["-i", iso, "-R", "-f"]);
  const files: string[] = [];
  for (const entry of listing.split("\n").filter(Boolean)) {
    const data = await runOk("isoinfo", ["-i", iso, "-R", "-x", entry]).catch(() => undefined);
    if (!/\.json$|user_data$/.test(entry) || data === undefined) continue;
    const target = path.join(dir, entry);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, data);
    files.push(entry);
  }
  return files.sort();
}

/** What cloud-init reads from the drive in a guest whose NIC has MAC `mac`. */
async function readWithCloudInit(iso: string, mac: string) {
  const dir = await tempDir("glint-configdrive-");
  const files = await extractIso(iso, dir);
  const out = await runOk(PYTHON, ["-c", READER, dir, mac]);
  return { files, read: JSON.parse(out) };
}

describe("the OpenStack config drive", () => {
  test("is a config-2 ISO that cloud-init's ConfigDriveReader reads: uuid, hostname, MAC", async () => {
    const dir = await tempDir("glint-configdrive-");
    const ids = freshIds();
    const iso = path.join(dir, "config-drive.iso");
    await buildConfigDrive("web-1", ids, iso);
    const info = await runOk("isoinfo", ["-d", "-i", iso]);
    expect(info).toMatch(/^Volume id: config-2$/m);
    const { files, read } = await readWithCloudInit(iso, ids.mac_address);
    expect(files).toEqual(
      [
        "/openstack/2012-08-10/meta_data.json",
        "/openstack/2012-08-10/user_data",
        "/openstack/2015-10-15/meta_data.json",
        "/openstack/2015-10-15/network_data.json",
        "/openstack/2015-10-15/user_data",
        "/openstack/latest/meta_data.json",
        "/openstack/latest/network_data.json",
        "/openstack/latest/user_data",
      ].sort(),
    );
    expect(read.instance_id).toBe(ids.vm_uuid);
    expect(read.local_hostname).toBe("web-1");
    expect(read.name).toBe("web-1");
    expect(read.random_seed_bytes).toBe(512);
    expect(read.public_keys).toEqual({});
    expect(read.userdata_head).toBe("#cloud-config");
    expect(read.macs).toEqual([ids.mac_address]);
    expect(read.nics).toEqual(["eth0"]);
    expect(read.subnets).toEqual(["dhcp4"]);
    // Another guest NIC's MAC is not the drive's: cloud-init refuses it.
    await expect(readWithCloudInit(iso, "52:54:00:00:00:01")).rejects.toThrow(/system nic/);
  }, 60_000);

  test("a VM created with --cloud openstack gets config-drive.iso; nuke rebuilds it with the new uuid", async () => {
    const home = await tempDir("glint-configdrive-home-");
    await runCliOk(["create", "os-1", "--cloud", "openstack", "--home", home]);
    const iso = path.join(home, "os-1", "config-drive.iso");
    await expect(fs.stat(path.join(home, "os-1", "seed.iso"))).rejects.toThrow();
    const ids1 = JSON.parse(await fs.readFile(path.join(home, "os-1", "identifiers.json"), "utf8"));
    const first = await readWithCloudInit(iso, ids1.mac_address);
    expect(first.read.instance_id).toBe(ids1.vm_uuid);
    expect(first.read.macs).toEqual([ids1.mac_address]);
    const args = JSON.parse(await runCliOk(["qemu-args", "os-1", "--json", "--home", home]));
    expect(args.join(" ")).toContain(`file=${iso},if=virtio`);
    expect(args.join(" ")).toContain(
      "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova",
    );
    await runCliOk(["nuke", "os-1", "--yes", "--home", home]);
    const ids2 = JSON.parse(await fs.readFile(path.join(home, "os-1", "identifiers.json"), "utf8"));
    const second = await readWithCloudInit(iso, ids2.mac_address);
    expect(second.read.instance_id).toBe(ids2.vm_uuid);
    expect(second.read.instance_id).not.toBe(first.read.instance_id);
    expect(second.read.macs).toEqual([ids2.mac_address]);
  }, 120_000);

  test("its files are built from typed, validated objects", () => {
    const ids = freshIds();
    const meta = buildConfigDriveMetaData("db-2", "db-2", ids, new Uint8Array(512));
    const net = buildConfigDriveNetworkData(ids);
    const files = configDriveFiles(meta, net, "#cloud-config\n");
    expect(files.map((f) => f.path.split("/")[1])).toEqual(
      expect.arrayContaining([...CONFIG_DRIVE_VERSIONS]),
    );
    expect(JSON.parse(files[0]?.content ?? "")).toMatchObject({ uuid: ids.vm_uuid });
    // A value outside its format never reaches the drive.
    expect(() => buildConfigDriveMetaData("Bad Name", "db-2", ids)).toThrow();
    expect(() => configDriveFiles({ ...meta, hostname: "x\ny" }, net, "")).toThrow();
    const next = regenerate(ids, "nuke");
    expect(buildConfigDriveMetaData("db-2", "db-2", next).uuid).not.toBe(meta.uuid);
  });
});
