/**
 * Every NIC gets a unique, stable MAC: a VM created with `--nics 2`, run
 * with one more `-nic` after `--`, shows the guest three NICs whose MACs are
 * the VM's MAC and its two extra MACs from identifiers.json.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { extraMacsOf } from "../../src/identity/model.js";
import { readIds, runCliOk } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";
import { type TinyGuest, tinyGuest } from "./guest/fixture.js";
import { bootWithGlint } from "./guest/runner.js";

let guest: TinyGuest;
let home: string;

beforeAll(async () => {
  guest = await tinyGuest();
  home = await tempDir("glint-e2e-nics-");
}, 300_000);

describe("extra NICs in a real guest", () => {
  it("the guest sees each NIC with the MAC Glint gave it", async () => {
    await runCliOk(["create", "nics-a", "--nics", "2", "--no-sysprep", "--home", home]);
    const created = await readIds(home, "nics-a");
    expect(extraMacsOf(created)).toHaveLength(1);
    const boot = await bootWithGlint(home, "nics-a", guest, "", [
      "-nic",
      "user,model=virtio-net-pci",
    ]);
    const ids = await readIds(home, "nics-a");
    // The third NIC was given a new extra MAC, kept in identifiers.json; the first one kept.
    expect(extraMacsOf(ids)).toHaveLength(2);
    expect(extraMacsOf(ids)[0]).toBe(extraMacsOf(created)[0]);
    const seen = Object.entries(boot.markers)
      .filter(([k]) => k.startsWith("mac:"))
      .map(([, v]) => v[0]);
    expect(seen.sort()).toEqual([ids.mac_address, ...extraMacsOf(ids)].sort());
    expect(new Set(seen).size).toBe(3);
  }, 400_000);
});
