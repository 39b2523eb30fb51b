/**
 * `glint verify` on stopped VMs: the overlay is read offline (the sysprep
 * engine's reader). Clones of one image that were not re-identified carry the
 * image's machine-id and SSH host keys: a mismatch for each, and a shared
 * value for `--all`; after `glint sysprep` the VM verifies.
 */
import { promises as fs } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vmPaths } from "../../src/vm/layout.js";
import { runCli as glint, runCliOk as glintOk, readIds } from "../support/cli.js";
import { type DiskImage, diskImage } from "../support/disk-image.js";
import { tempDir as tempHome } from "../support/tmp.js";

interface VerifyJson {
  vm: string;
  ok: boolean;
  state: string;
  checks: { field: string; expected: string; seen: string | null; status: string; why?: string }[];
  shared?: { field: string; value: string; with: string[] }[];
}

let home: string;
let img: DiskImage;

beforeAll(async () => {
  img = await diskImage({ table: "gpt" });
  home = await tempHome("glint-verify-offline-");
  for (const vm of ["s", "t", "u"]) {
    await glintOk(["create", vm, "--home", home, "--base", img.qcow2, "--overlay", "--no-sysprep"]);
  }
}, 180_000);

afterAll(async () => {
  await fs.rm(home, { recursive: true, force: true });
});

const statusOf = (r: VerifyJson, field: string) => r.checks.find((c) => c.field === field);

describe("glint verify on stopped VMs", () => {
  it("a clone that was not re-identified: the image's machine-id, hostname and UUIDs are mismatches", async () => {
    const r = await glint(["verify", "s", "--home", home, "--json"]);
    expect(r.code).toBe(1);
    const [s] = JSON.parse(r.stdout) as VerifyJson[];
    expect(s?.state).toBe("stopped");
    expect(s?.ok).toBe(false);
    expect(statusOf(s as VerifyJson, "machine-id")).toMatchObject({
      status: "mismatch",
      seen: img.ids.machineId,
    });
    expect(statusOf(s as VerifyJson, "hostname")).toMatchObject({
      status: "mismatch",
      seen: img.ids.hostname,
    });
    expect(statusOf(s as VerifyJson, "root fs uuid")).toMatchObject({
      status: "mismatch",
      seen: img.ids.rootUuid,
    });
    expect(statusOf(s as VerifyJson, "vm uuid")?.status).toBe("unavailable");
  }, 120_000);

  it("after glint sysprep, every value read from the disk matches", async () => {
    await glintOk(["sysprep", vmPaths(home, "s").overlay, "--vm", "s", "--home", home]);
    const ids = await readIds(home, "s");
    const r = await glint(["verify", "s", "--home", home]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^s \(stopped\): ok — 6 ok, 0 mismatch, 3 unavailable/);
    for (const [field, value] of [
      ["disk guid", ids.disk_uuid],
      ["root partuuid", ids.partition_uuid],
      ["root fs uuid", ids.filesystem_uuid],
      ["machine-id", ids.machine_id],
      ["hostname", "s"],
    ]) {
      const line = r.stdout.split("\n").find((l) => l.includes(` ${field} `));
      expect(line).toMatch(new RegExp(`^ok\\s+${field}\\s+${value}\\s+${value}\\s+image$`));
    }
  }, 120_000);

  it("--all --json: the two clones that were not re-identified share the machine-id and SSH host keys", async () => {
    const r = await glint(["verify", "--all", "--home", home, "--json"]);
    expect(r.code).toBe(1);
    const all = JSON.parse(r.stdout) as VerifyJson[];
    expect(all.map((x) => [x.vm, x.ok])).toEqual([
      ["s", true],
      ["t", false],
      ["u", false],
    ]);
    const t = all.find((x) => x.vm === "t") as VerifyJson;
    expect(t.shared).toContainEqual({ field: "machine-id", value: img.ids.machineId, with: ["u"] });
    expect(t.shared?.filter((x) => x.field === "ssh-host-key").length).toBeGreaterThan(0);
    expect(all.find((x) => x.vm === "s")?.shared).toEqual([]);
    const text = await glint(["verify", "--all", "--home", home]);
    expect(text.stdout).toContain(`machine-id ${img.ids.machineId}: t, u`);
  }, 180_000);
});
