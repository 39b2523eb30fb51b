/**
 * Issue "libvirt", against a real libvirt daemon (test/support/libvirtd.ts):
 * a Glint VM exported, validated, defined and started by libvirt under TCG
 * shows the guest the identity it shows under `glint run`; `virsh dumpxml`
 * imports back to the same identity; a `virt-clone` imported, nuked and
 * synced boots with an identity of its own, TPM EK included; a running
 * domain refuses `sync`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEkFingerprint, resolveFirmware } from "../../src/firmware/index.js";
import { IDENTIFIER_FIELDS, type SystemIdentifiers } from "../../src/identity/model.js";
import { readDomain } from "../../src/libvirt/index.js";
import { libvirtTpmStateDir } from "../../src/vm/layout.js";
import { readIds, runCli, runCliOk } from "../support/cli.js";
import { sha256 } from "../support/disk-read.js";
import { run } from "../support/exec.js";
import { type Libvirtd, startLibvirtd } from "../support/libvirtd.js";
import { tempDir } from "../support/tmp.js";
import { enrolledKeys } from "../support/uefi-vars.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { expectGuestSees, seen } from "./guest/identity-view.js";
import { type Markers, markerValue, parseMarkers } from "./guest/runner.js";

let guest: TinyGuest;
let daemon: Libvirtd;
let home: string;
let env: NodeJS.ProcessEnv;
/** Serial console logs: kept for the whole file (a later test starts a domain again). */
let consoles: string;

beforeAll(async () => {
  guest = await tinyGuest();
  daemon = await startLibvirtd();
  home = await tempDir("glint-e2e-libvirt-");
  env = { GLINT_LIBVIRT_SWTPM_DIR: daemon.swtpmDir };
  consoles = await tempDir("glint-libvirt-console-");
}, 300_000);

afterAll(async () => {
  await daemon?.stop();
}, 60_000);

const glint = (args: readonly string[], h = home) => runCliOk([...args, "--home", h], { env });

async function virtXml(domain: string, args: readonly string[]): Promise<void> {
  const r = await run("virt-xml", ["--connect", daemon.uri, domain, ...args], {
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`virt-xml ${args.join(" ")}: ${r.stderr}`);
}

/**
 * Start `domain` with the tiny guest's kernel and its serial console in a
 * file, wait until it has powered off, and return what the guest printed.
 */
async function bootDomain(domain: string): Promise<Markers> {
  const log = path.join(consoles, `${domain}.log`);
  await virtXml(domain, [
    "--edit",
    "--boot",
    `kernel=${guest.kernel},initrd=${guest.initrd},kernel_args=console=ttyS0 panic=-1 quiet`,
  ]);
  await virtXml(domain, ["--remove-device", "--serial", "all"]);
  await virtXml(domain, ["--remove-device", "--console", "all"]);
  await virtXml(domain, ["--add-device", "--serial", `file,path=${log}`]);
  await daemon.virsh(["start", domain]);
  const deadline = Date.now() + 300_000;
  while ((await daemon.virsh(["domstate", domain])).trim() !== "shut off") {
    if (Date.now() > deadline) throw new Error(`${domain} did not power off within 300 s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const markers = parseMarkers(await fs.readFile(log, "utf8"));
  expect(markers.done, "the guest printed GLINT:done").toBeDefined();
  return markers;
}

function sameIdentity(a: SystemIdentifiers, b: SystemIdentifiers): void {
  for (const f of IDENTIFIER_FIELDS) expect(b[f], f).toBe(a[f]);
}

const ek = (uuid: string) => readEkFingerprint(libvirtTpmStateDir(daemon.swtpmDir, uuid));

describe("glint libvirt with a real libvirtd", () => {
  it("export → virt-xml-validate → define → virsh start: the guest reads its Glint identity", async () => {
    await glint(["create", "lv-a", "--disk-size", "16M", "--firmware", "uefi", "--tpm"]);
    const file = path.join(home, "lv-a.xml");
    await glint(["libvirt", "export", "lv-a", "-o", file, "--type", "qemu", "--validate"]);
    const validated = await run("virt-xml-validate", [file, "domain"]);
    expect(validated.code, validated.stderr).toBe(0);
    const out = await glint([
      "libvirt",
      "define",
      "lv-a",
      "--type",
      "qemu",
      "--connect",
      daemon.uri,
    ]);
    const ids = await readIds(home, "lv-a");
    expect(out).toContain(`defined as libvirt domain "lv-a" (uuid ${ids.vm_uuid})`);
    expect((await daemon.virsh(["domuuid", "lv-a"])).trim()).toBe(ids.vm_uuid);
    // libvirt's TPM is Glint's TPM.
    expect(await ek(ids.vm_uuid)).toBe(await readEkFingerprint(path.join(home, "lv-a", "tpm")));
    const markers = await bootDomain("lv-a");
    expectGuestSees(seen(markers), ids, "lv-a");
    expect(markerValue(markers, "tpm")).toBe("yes");
    expect(markerValue(markers, "tpm_version")).toBe("2");
    expect(markerValue(markers, "efi")).toBe("yes");
    expect(markerValue(markers, "9p")).toBe("yes");
  }, 600_000);

  it("a running domain refuses sync, and nothing changes", async () => {
    const before = await daemon.virsh(["dumpxml", "--inactive", "lv-a"]);
    await daemon.virsh(["start", "lv-a"]);
    try {
      const r = await runCli(["libvirt", "sync", "lv-a", "--home", home], { env });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(
        /^glint: libvirt domain "lv-a" is running: glint libvirt sync changes it only while it is shut off/,
      );
    } finally {
      await daemon.virsh(["destroy", "lv-a"]);
    }
    expect(await daemon.virsh(["dumpxml", "--inactive", "lv-a"])).toBe(before);
  }, 120_000);

  it("virsh dumpxml imports back to the same identity, TPM included", async () => {
    const ids = await readIds(home, "lv-a");
    const xml = path.join(home, "dump.xml");
    await fs.writeFile(xml, await daemon.virsh(["dumpxml", "lv-a"]));
    const other = await tempDir("glint-e2e-libvirt-import-");
    const r = JSON.parse(await glint(["libvirt", "import", xml, "--as", "copy", "--json"], other));
    expect(r.collisions).toEqual([]);
    expect(r.drawn).toEqual([]);
    expect(r.tpm).toBe("adopted");
    sameIdentity(ids, await readIds(other, "copy"));
    expect(await readEkFingerprint(path.join(other, "copy", "tpm"))).toBe(
      await readEkFingerprint(path.join(home, "lv-a", "tpm")),
    );
    // By name through the daemon, too.
    const third = await tempDir("glint-e2e-libvirt-import-");
    await glint(["libvirt", "import", "lv-a", "--connect", daemon.uri], third);
    sameIdentity(ids, await readIds(third, "lv-a"));
    const config = JSON.parse(await fs.readFile(path.join(third, "lv-a", "config.json"), "utf8"));
    expect(config).toMatchObject({
      firmware: "uefi",
      tpm: true,
      libvirt: { domain: "lv-a", uri: daemon.uri },
    });
  }, 300_000);

  it("Secure Boot with three NICs: libvirt runs QEMU with the secure code, SMM and Glint's enrolled NVRAM; dumpxml imports every MAC", async () => {
    await glint([
      "create",
      "lv-sb",
      "--disk-size",
      "16M",
      "--firmware",
      "uefi-secure",
      "--nics",
      "3",
    ]);
    const ids = await readIds(home, "lv-sb");
    const macs = [ids.mac_address, ...((ids as { extra_macs?: string[] }).extra_macs ?? [])];
    expect(macs).toHaveLength(3);
    const config = JSON.parse(await fs.readFile(path.join(home, "lv-sb", "config.json"), "utf8"));
    const code = (await resolveFirmware("uefi-secure", { env: { PATH: process.env.PATH } })).code;
    expect(config.firmware_code).toBe(code);
    const nvram = path.join(home, "lv-sb", "uefi-instance.fd");
    // Glint's NVRAM has the Secure Boot keys enrolled.
    expect((await enrolledKeys(nvram)).sort()).toEqual(["KEK", "PK", "db", "dbx"]);
    const nvramBefore = await sha256(nvram);
    await glint(["libvirt", "define", "lv-sb", "--type", "qemu", "--connect", daemon.uri]);
    // Defining made no copy and changed nothing: the domain's NVRAM is Glint's file, byte for byte.
    expect(await sha256(nvram)).toBe(nvramBefore);
    expect(
      readDomain(await daemon.virsh(["dumpxml", "--inactive", "lv-sb"]), "x").nvram?.path,
    ).toBe(nvram);
    await daemon.virsh(["start", "lv-sb"]);
    try {
      // libvirt's view of the running domain.
      const live = await daemon.virsh(["dumpxml", "lv-sb"]);
      const facts = readDomain(live, "live XML");
      expect(facts.loader).toEqual({ path: code, secure: true });
      expect(facts.nvram?.path).toBe(nvram);
      expect(live).toMatch(/<smm state=['"]on['"]\/>/);
      expect(facts.nics.map((n) => n.mac)).toEqual(macs);
      // QEMU as libvirt started it.
      const pid = (
        await fs.readFile(path.join(daemon.root, "run", "qemu", "lv-sb.pid"), "utf8")
      ).trim();
      const argv = (await fs.readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
      const valuesOf = (opt: string) => argv.flatMap((a, i) => (argv[i - 1] === opt ? [a] : []));
      expect(
        valuesOf("-machine").some((m) => /(^|,)smm=on(,|$)/.test(m)),
        argv.join(" "),
      ).toBe(true);
      expect(valuesOf("-global")).toContain("driver=cfi.pflash01,property=secure,value=on");
      const blockdevs = valuesOf("-blockdev").map((b) => JSON.parse(b) as Record<string, unknown>);
      const files = blockdevs.flatMap((b) => (typeof b.filename === "string" ? [b.filename] : []));
      expect(files).toContain(code);
      expect(files).toContain(nvram);
      const devices = valuesOf("-device").join(" ");
      for (const mac of macs) expect(devices).toContain(mac);
      // QEMU holds Glint's very file open (not a copy libvirt made).
      const open = await Promise.all(
        (await fs.readdir(`/proc/${pid}/fd`)).map((fd) =>
          fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => ""),
        ),
      );
      expect(open).toContain(nvram);
      expect(open).toContain(await fs.realpath(code)); // Debian's .ms.fd links to .secboot.fd
      // Still running a moment later: QEMU took the whole Secure Boot command line.
      await new Promise((r) => setTimeout(r, 3000));
      expect((await daemon.virsh(["domstate", "lv-sb"])).trim()).toBe("running");
      // virsh dumpxml of the running domain imports back to every MAC.
      const dump = path.join(home, "lv-sb-live.xml");
      await fs.writeFile(dump, live);
      const other = await tempDir("glint-e2e-libvirt-import-");
      const r = JSON.parse(
        await glint(["libvirt", "import", dump, "--as", "sb-copy", "--json"], other),
      );
      expect(r.nics).toBe(3);
      expect(r.adopted).toContain("extra_macs");
      expect(r.collisions).toEqual([]);
      sameIdentity(ids, await readIds(other, "sb-copy"));
      expect(r.identifiers.extra_macs).toEqual(macs.slice(1));
      const copyConfig = JSON.parse(
        await fs.readFile(path.join(other, "sb-copy", "config.json"), "utf8"),
      );
      expect(copyConfig).toMatchObject({ firmware: "uefi-secure", firmware_code: code, nics: 3 });
      expect((await enrolledKeys(path.join(other, "sb-copy", "uefi-instance.fd"))).sort()).toEqual([
        "KEK",
        "PK",
        "db",
        "dbx",
      ]);
    } finally {
      await daemon.virsh(["destroy", "lv-sb"]);
    }
    // The keys are still enrolled in Glint's file after the firmware ran on it.
    expect((await enrolledKeys(nvram)).sort()).toEqual(["KEK", "PK", "db", "dbx"]);
  }, 300_000);

  it("virt-clone, then import + nuke + sync: the clone boots with a distinct identity and TPM EK", async () => {
    const original = await readIds(home, "lv-a");
    const clone = await run(
      "virt-clone",
      ["--connect", daemon.uri, "--original", "lv-a", "--name", "lv-b", "--auto-clone"],
      { timeoutMs: 300_000 },
    );
    expect(clone.code, clone.stderr).toBe(0);
    // The clone shares every SMBIOS value with lv-a: the import reports it and draws fresh ones.
    const imported = await runCli(
      ["libvirt", "import", "lv-b", "--connect", daemon.uri, "--home", home],
      {
        env,
      },
    );
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toMatch(
      /warning: machine_id \S+ of domain "lv-b" is held by VM "lv-a"/,
    );
    const cloneUuid = (await daemon.virsh(["domuuid", "lv-b"])).trim();
    expect((await readIds(home, "lv-b")).vm_uuid).toBe(cloneUuid);
    await glint(["nuke", "lv-b", "--yes"]);
    const ids = await readIds(home, "lv-b");
    const synced = await glint(["libvirt", "sync", "lv-b"]);
    expect(synced).toContain(`(uuid ${cloneUuid} → ${ids.vm_uuid})`);
    expect((await daemon.virsh(["domuuid", "lv-b"])).trim()).toBe(ids.vm_uuid);
    const markers = await bootDomain("lv-b");
    const view = seen(markers);
    expectGuestSees(view, ids, "lv-b");
    expect(markerValue(markers, "tpm")).toBe("yes");
    for (const f of IDENTIFIER_FIELDS) expect(ids[f], f).not.toBe(original[f]);
    const ekA = await ek(original.vm_uuid);
    const ekB = await ek(ids.vm_uuid);
    expect(ekB).toBe(await readEkFingerprint(path.join(home, "lv-b", "tpm")));
    expect(ekB).not.toBe(ekA);
  }, 900_000);
});
