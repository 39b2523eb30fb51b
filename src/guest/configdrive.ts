/**
 * The OpenStack config drive (cloud profile `openstack`): what Nova attaches
 * as a `config-2` volume, built from typed, validated objects. cloud-init's
 * ConfigDrive datasource reads `openstack/<version>/meta_data.json` (its
 * `uuid` is the instance-id, `hostname` the local hostname),
 * `network_data.json` and `user_data` from the newest version it knows
 * (cloudinit/sources/helpers/openstack.py). Glint writes the versions
 * 2012-08-10 (the first, without network data, as Nova does),
 * 2015-10-15 (the first with network_data.json) and `latest`.
 */
import { createHash, randomBytes } from "node:crypto";
import * as z from "zod";
import { MAC_RE, UUID_V4_RE, VM_NAME_RE } from "../identity/formats.js";
import { type SystemIdentifiers, uuidV4FromBytes } from "../identity/model.js";

/** The volume label cloud-init's ConfigDrive datasource looks for. */
export const CONFIG_DRIVE_LABEL = "config-2";

/** The metadata versions written, oldest first. */
export const CONFIG_DRIVE_VERSIONS = ["2012-08-10", "2015-10-15", "latest"] as const;

/** Versions that carry network_data.json (Nova writes it from Liberty, 2015-10-15). */
const NETWORK_DATA_VERSIONS: readonly string[] = ["2015-10-15", "latest"];

/** Bytes of `random_seed` (Nova gives 512). */
export const RANDOM_SEED_BYTES = 512;

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** openstack/<version>/meta_data.json, as Nova writes it (the keys cloud-init reads). */
export const metaDataJsonSchema = z.strictObject({
  uuid: z.string().regex(UUID_V4_RE),
  name: z.string().regex(VM_NAME_RE),
  hostname: z.string().regex(VM_NAME_RE),
  launch_index: z.literal(0),
  availability_zone: z.literal("nova"),
  public_keys: z.record(z.string(), z.string()),
  keys: z.array(z.unknown()),
  random_seed: z.string().regex(BASE64_RE),
  meta: z.strictObject({ glint_generation: z.string().regex(/^[1-9][0-9]{0,9}$/) }),
});
export type ConfigDriveMetaData = z.infer<typeof metaDataJsonSchema>;

/** openstack/<version>/network_data.json: one physical link with the VM's MAC, DHCP on it. */
export const networkDataJsonSchema = z.strictObject({
  links: z
    .array(
      z.strictObject({
        id: z.string().regex(/^tap[0-9a-f]{12}$/),
        type: z.literal("phy"),
        ethernet_mac_address: z.string().regex(MAC_RE),
        mtu: z.literal(1500),
      }),
    )
    .length(1),
  networks: z
    .array(
      z.strictObject({
        id: z.literal("network0"),
        type: z.literal("ipv4_dhcp"),
        link: z.string().regex(/^tap[0-9a-f]{12}$/),
        network_id: z.string().regex(UUID_V4_RE),
      }),
    )
    .length(1),
  services: z.array(z.never()).length(0),
});
export type ConfigDriveNetworkData = z.infer<typeof networkDataJsonSchema>;

/** The typed meta_data.json of identity `ids` (a fresh random_seed unless one is given). */
export function buildConfigDriveMetaData(
  vmName: string,
  hostname: string,
  ids: Pick<SystemIdentifiers, "vm_uuid" | "generation">,
  randomSeed: Uint8Array = randomBytes(RANDOM_SEED_BYTES),
): ConfigDriveMetaData {
  return metaDataJsonSchema.parse({
    uuid: ids.vm_uuid,
    name: vmName,
    hostname,
    launch_index: 0,
    availability_zone: "nova",
    public_keys: {},
    keys: [],
    random_seed: Buffer.from(randomSeed).toString("base64"),
    meta: { glint_generation: String(ids.generation) },
  } satisfies ConfigDriveMetaData);
}

/** The typed network_data.json: the VM's MAC on one link, with DHCP. */
export function buildConfigDriveNetworkData(
  ids: Pick<SystemIdentifiers, "mac_address" | "vm_uuid">,
): ConfigDriveNetworkData {
  const link = `tap${ids.mac_address.replaceAll(":", "")}`;
  const networkId = uuidV4FromBytes(
    createHash("sha256").update(`glint-network:${ids.vm_uuid}`).digest(),
  );
  return networkDataJsonSchema.parse({
    links: [{ id: link, type: "phy", ethernet_mac_address: ids.mac_address, mtu: 1500 }],
    // A network id of Glint's own, derived from the VM UUID.
    networks: [{ id: "network0", type: "ipv4_dhcp", link, network_id: networkId }],
    services: [],
  } satisfies ConfigDriveNetworkData);
}

/** One file of an ISO, by its path inside the volume. */
export interface IsoFile {
  readonly path: string;
  readonly content: string;
}

/** Every file of the config drive: each version's meta_data.json and user_data, and network_data.json. */
export function configDriveFiles(
  metaData: ConfigDriveMetaData,
  networkData: ConfigDriveNetworkData,
  userData: string,
): IsoFile[] {
  const meta = `${JSON.stringify(metaDataJsonSchema.parse(metaData))}\n`;
  const net = `${JSON.stringify(networkDataJsonSchema.parse(networkData))}\n`;
  const files: IsoFile[] = [];
  for (const version of CONFIG_DRIVE_VERSIONS) {
    const dir = `openstack/${version}`;
    files.push({ path: `${dir}/meta_data.json`, content: meta });
    files.push({ path: `${dir}/user_data`, content: userData });
    if (NETWORK_DATA_VERSIONS.includes(version)) {
      files.push({ path: `${dir}/network_data.json`, content: net });
    }
  }
  return files;
}
