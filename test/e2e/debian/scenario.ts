/**
 * The real-guest scenario, run once per Debian release: two VMs cloned from
 * one used image, both booted through `glint run` side by side, then one
 * nuked and booted again (beside the credential-only clone on Debian 13).
 * Three or four boots under TCG, in two rounds.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SystemIdentifiers } from "../../../src/identity/model.js";
import { QmpClient } from "../../../src/verify/qmp.js";
import { vmPaths } from "../../../src/vm/layout.js";
import { runCli as glint, runCliOk as glintOk, readIds } from "../../support/cli.js";
import { tempDir as tempHome } from "../../support/tmp.js";
import { bootDebian, type DebianBoot, STAY_UP, startDebian } from "./boot.js";
import { sealImage } from "./edit.js";
import { type DebianImage, type DebianSuite, debianImage } from "./image.js";
import { type GuestReport, macs, sshFingerprints } from "./report.js";

const BUILD_LIMIT_MS = 50 * 60_000;
const BOOTS_LIMIT_MS = 50 * 60_000;
const POWER_OFF_LIMIT_MS = 10 * 60_000;

/** A vfat volume ID `XXXX-XXXX` from the first 8 hex digits of a UUID. */
function vfatId(uuid: string): string {
  const h = uuid.replace(/-/g, "").slice(0, 8).toUpperCase();
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

/** The cloud-init datasource a VM is created for (`glint create --cloud`). */
export type Cloud = "nocloud" | "openstack";

/** What the guest must report for VM `vm` with identity `ids`. */
export function expectedReport(
  vm: string,
  ids: SystemIdentifiers,
  cloud: Cloud = "nocloud",
): Record<string, unknown> {
  return {
    machine_id: ids.machine_id,
    hostname: vm,
    // NoCloud: the instance-id Glint writes in meta-data; the config drive's
    // meta_data.json `uuid` (the VM's UUID, as Nova gives its instance UUID).
    instance_id: cloud === "openstack" ? ids.vm_uuid : `iid-${ids.vm_uuid}-g${ids.generation}`,
    datasource: cloud === "openstack" ? "ConfigDrive" : "NoCloud",
    cloud_init_status: "done",
    cloud_init_errors: "0",
    product_uuid: ids.vm_uuid,
    macs: [ids.mac_address],
    root_uuid: ids.filesystem_uuid,
    root_partuuid: ids.partition_uuid,
    esp_uuid: vfatId(ids.boot_uuid),
    booted_by_uuid: true,
    failed_units: "",
  };
}

/** The same fields, as the guest reported them. */
export function seenReport(r: GuestReport, ids: SystemIdentifiers): Record<string, unknown> {
  const cmdline = r.cmdline ?? "";
  return {
    machine_id: r.machine_id,
    hostname: r.hostname,
    instance_id: r.instance_id,
    // cloud-init's result.json: "DataSourceConfigDrive [net,ver=2][source=/dev/sr0]".
    datasource: /^DataSource([A-Za-z]+)/.exec(r.datasource ?? "")?.[1] ?? r.datasource,
    cloud_init_status: r.cloud_init_status,
    cloud_init_errors: r.cloud_init_errors,
    product_uuid: r.product_uuid?.toLowerCase(),
    macs: macs(r),
    root_uuid: r.root_uuid,
    root_partuuid: r.root_partuuid,
    esp_uuid: r.esp_uuid,
    // GRUB passes BOOT_IMAGE; the root comes from the filesystem UUID Glint chose.
    booted_by_uuid:
      /(^| )BOOT_IMAGE=/.test(cmdline) && cmdline.includes(`root=UUID=${ids.filesystem_uuid}`),
    failed_units: r.failed_units,
  };
}

/** The values that must differ between two VMs (or two generations of one). */
function perInstance(r: GuestReport): Record<string, string[]> {
  return {
    machine_id: [r.machine_id ?? ""],
    ssh_host_keys: sshFingerprints(r),
    instance_id: [r.instance_id ?? ""],

    root_uuid: [r.root_uuid ?? ""],
    root_partuuid: [r.root_partuuid ?? ""],
    product_uuid: [r.product_uuid ?? ""],
    macs: macs(r),
    random_seed: [r.random_seed ?? ""],
    // dhclient's DUID, as its lease file records it: offline sysprep removed
    // the base's lease, and marks the identity applied, so that the guest
    // script keeps the fresh lease of the clone's first boot.
    dhcp_duid: r.dhcp_duid ? [r.dhcp_duid] : [],
  };
}

/** Every per-instance value that `x` and `y` share (expected: none). */
export function shared(x: GuestReport, y: GuestReport): Record<string, string[]> {
  const px = perInstance(x);
  const py = perInstance(y);
  const out: Record<string, string[]> = {};
  for (const [field, values] of Object.entries(px)) {
    const common = values.filter((v) => (py[field] ?? []).includes(v));
    const empty = values.length === 0 || (py[field] ?? []).length === 0;
    if (common.length > 0 || empty) out[field] = empty ? ["(missing)"] : common;
  }
  return out;
}

export interface ScenarioOptions {
  /**
   * systemd ≥ 254 reads the `system.machine_id` credential: prove it with a
   * clone that is not re-identified offline and whose machine-id is empty.
   */
  credentialOnly?: boolean;
  /**
   * VM a is created with `--cloud openstack`: cloud-init's ConfigDrive
   * datasource reads Glint's config drive, and its instance-id changes with
   * `glint nuke`.
   */
  openstack?: boolean;
}

export function debianScenario(suite: DebianSuite, options: ScenarioOptions = {}): void {
  describe(`real Debian guests (${suite})`, () => {
    let img: DebianImage;
    let home: string;
    const boots = new Map<string, DebianBoot>();
    const cloudOf = (vm: string): Cloud =>
      vm === "a" && options.openstack ? "openstack" : "nocloud";
    const create = async (vm: string) => {
      await glintOk([
        "create",
        vm,
        "--cloud",
        cloudOf(vm),
        "--home",
        home,
        "--base",
        img.image,
        "--overlay",
        "--firmware",
        "uefi",
        "--tpm",
        "--memory",
        "1024",
      ]);
    };

    beforeAll(async () => {
      img = await debianImage(suite);
      home = await tempHome(`glint-${suite}-`);
    }, BUILD_LIMIT_MS);
    afterAll(async () => {
      if (home) await fs.rm(home, { recursive: true, force: true });
    });

    it("the base image is a used system: machine-id, SSH host keys, a DHCP lease, a random seed, cloud-init state", () => {
      const base = img.base;
      expect(base.machine_id).toMatch(/^[0-9a-f]{32}$/);
      expect(sshFingerprints(base).length).toBeGreaterThan(0);
      expect(base.dhcp_duid ?? "").not.toBe("");
      expect(base.random_seed).toMatch(/^[0-9a-f]{64}$/);
      expect(base.instance_id).toBe("iid-glint-test-base");
      expect(base.cloud_init_status).toBe("done");
    });

    it(
      `two clones of the used image, a${options.openstack ? " (OpenStack config drive)" : ""} and b, each boot with their own identity`,
      async () => {
        await create("a");
        await create("b");
        // a and b boot side by side (one TCG vCPU each); b stays up after its
        // report, so that glint verify reads it live.
        const runA = bootDebian(home, "a", path.join(home, "a-boot1.log"));
        const live = startDebian(home, "b", path.join(home, "b-boot1.log"), STAY_UP);
        try {
          const bootA = await runA;
          boots.set("a", bootA);
          process.stderr.write(`${suite} a: booted and reported in ${bootA.seconds} s\n`);
          const idsA = await readIds(home, "a");
          expect(seenReport(bootA.report, idsA)).toEqual(expectedReport("a", idsA, cloudOf("a")));

          const reported = await live.reported();
          const idsB = await readIds(home, "b");
          expect(seenReport(reported, idsB)).toEqual(expectedReport("b", idsB, cloudOf("b")));
          const v = await glint(["verify", "b", "--home", home, "--json"]);
          const [vb] = JSON.parse(v.stdout) as {
            ok: boolean;
            state: string;
            checks: { field: string; status: string; seen: string | null; why?: string }[];
          }[];
          expect(vb?.state).toBe("running");
          expect(vb?.checks.filter((c) => c.status !== "ok")).toEqual([]);
          expect(vb?.checks.length).toBe(10);
          expect(v.code).toBe(0);
          // a is stopped (read from its overlay), b runs: neither shares a machine-id or SSH host key.
          const all = await glint(["verify", "--all", "--home", home, "--json"]);
          expect(all.stdout).not.toContain('"field": "ssh-host-key"');
          expect(all.code).toBe(0);
          const qmp = await QmpClient.connect(vmPaths(home, "b").qmpSocket);
          try {
            await qmp.execute("system_powerdown");
          } finally {
            qmp.close();
          }
          // The report is in: a power-off slowed by a busy host gets its own limit.
          const bootB = await live.finished(POWER_OFF_LIMIT_MS);
          boots.set("b", bootB);
          process.stderr.write(
            `${suite} b: booted, verified and powered off in ${bootB.seconds} s\n`,
          );
        } catch (e) {
          await live.kill();
          await runA.catch(() => undefined);
          throw e;
        }
        const a = boots.get("a")?.report as GuestReport;
        const b = boots.get("b")?.report as GuestReport;
        expect(shared(a, b)).toEqual({});
        // Against the base only what the base had of its own (the VM's UUID and MAC were QEMU's defaults).
        const { product_uuid, macs: _m, ...withBaseA } = shared(a, img.base);
        const { product_uuid: _p, macs: _n, ...withBaseB } = shared(b, img.base);
        expect({ withBaseA, withBaseB }).toEqual({ withBaseA: {}, withBaseB: {} });
        void product_uuid;
      },
      BOOTS_LIMIT_MS,
    );

    /** c: not re-identified offline, sealed: an empty /etc/machine-id, no /etc/hostname (Debian 13). */
    const bootCredentialOnly = async (): Promise<DebianBoot> => {
      await glintOk([
        "create",
        "c",
        "--home",
        home,
        "--base",
        img.image,
        "--overlay",
        "--no-sysprep",
        "--firmware",
        "uefi",
        "--memory",
        "1024",
      ]);
      await sealImage(vmPaths(home, "c").overlay);
      return bootDebian(home, "c", path.join(home, "c-boot1.log"));
    };
    let cBoot: Promise<DebianBoot> | undefined;

    it(
      "after glint nuke a, every per-instance value changes on the next boot",
      async () => {
        const before = boots.get("a")?.report;
        expect(before).toBeDefined();
        await glintOk(["nuke", "a", "--home", home, "--yes"]);
        // The credential-only clone c boots beside a (see its test below).
        if (options.credentialOnly) {
          cBoot = bootCredentialOnly();
          cBoot.catch(() => undefined);
        }
        const boot = await bootDebian(home, "a", path.join(home, "a-boot2.log"));
        process.stderr.write(`${suite} a after nuke: booted and reported in ${boot.seconds} s\n`);
        const ids = await readIds(home, "a");
        expect(ids.generation).toBe(2);
        expect(seenReport(boot.report, ids)).toEqual(expectedReport("a", ids, cloudOf("a")));
        expect(shared(boot.report, before as GuestReport)).toEqual({});
        expect(shared(boot.report, boots.get("b")?.report as GuestReport)).toEqual({});
      },
      BOOTS_LIMIT_MS,
    );

    if (options.credentialOnly) {
      it(
        "without sysprep, sealed (empty /etc/machine-id, no /etc/hostname), systemd takes the machine-id and hostname from Glint's SMBIOS credentials",
        async () => {
          const boot = await (cBoot ?? bootCredentialOnly());
          process.stderr.write(`${suite} c (credential only): reported in ${boot.seconds} s\n`);
          const ids = await readIds(home, "c");
          expect({
            machine_id: boot.report.machine_id,
            hostname: boot.report.hostname,
            // systemd says where the machine-id came from.
            source:
              /machine id from credential/i.test(boot.serial) ||
              /credential/i.test(boot.report.machine_id_log ?? ""),
            // PID 1 names the host long before cloud-init runs: with no
            // /etc/hostname, from the system.hostname credential.
            pid1Hostname: /systemd\[1\]: Hostname set to <c>/.test(boot.serial),
            // The guest script found the machine-id right: no reboot was needed.
            reboot: boot.serial.includes("GLINT:state=reboot-pending"),
          }).toEqual({
            machine_id: ids.machine_id,
            hostname: "c",
            source: true,
            pid1Hostname: true,
            reboot: false,
          });
        },
        BOOTS_LIMIT_MS,
      );
    }
  });
}
