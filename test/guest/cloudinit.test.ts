/**
 * The cloud-init seed built from typed objects: YAML 1.1 that cloud-init's
 * own schema check (`cloud-init schema`) accepts, that reads back as exactly
 * the objects built, whatever the VM name looks like to YAML.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parse as parseYaml } from "yaml";
import { GlintError } from "../../src/errors.js";
import {
  buildCloudConfig,
  type CloudConfig,
  checkMetaData,
  checkUserData,
  cloudConfigSchema,
  GUEST_IDENTITY_ENV_PATH,
  GUEST_SCRIPT_PATH,
  instanceIdFor,
  loadScript,
  parseIdentityEnv,
  parseYaml11,
  renderGuestFiles,
  renderIdentityEnv,
  renderSeed,
} from "../../src/guest/index.js";
import { run } from "../support/exec.js";
import { hostnameFromArb, idsArb, vmNameArb } from "../support/guest-root.js";
import { freshIds, regenerate } from "../support/identity.js";
import { tempDir } from "../support/tmp.js";

/** VM names (valid hostnames) that plain YAML 1.1 would read as something else than a string. */
const YAML_LOOKALIKES = [
  "yes",
  "no",
  "on",
  "off",
  "y",
  "n",
  "null",
  "true",
  "123",
  "1e3",
  "0x1f",
  "0755",
  "1-2",
  "12-30",
  "2026-01-01",
  "nan",
  "inf",
];

let work: string;

beforeAll(async () => {
  work = await tempDir("glint-cloudinit-");
});

afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

/** `cloud-init schema --config-file` on `userData`: cloud-init's own cloud-config validation. */
async function cloudInitSchema(userData: string): Promise<{ code: number | null; output: string }> {
  const file = path.join(work, `user-data-${process.hrtime.bigint()}`);
  await fs.writeFile(file, userData);
  const r = await run("cloud-init", ["schema", "--config-file", file]);
  return { code: r.code, output: r.stdout + r.stderr };
}

function decode(cfg: CloudConfig, guestPath: string): string {
  const file = cfg.write_files.find((f) => f.path === guestPath);
  expect(file, guestPath).toBeDefined();
  return Buffer.from(file?.content ?? "", "base64").toString("utf8");
}

describe("user-data", () => {
  test("is a #cloud-config that installs the static script and identity.env and runs the script with it", () => {
    const ids = freshIds();
    const { userData } = renderSeed("web-01", ids);
    expect(userData.split("\n")[0]).toBe("#cloud-config");
    const cfg = cloudConfigSchema.parse(parseYaml11(userData, "user-data"));
    expect(cfg.ssh_deletekeys).toBe(true);
    expect(cfg.preserve_hostname).toBe(false);
    expect(cfg.hostname).toBe("web-01");
    expect(cfg.write_files.map((f) => [f.path, f.permissions, f.encoding, f.owner])).toEqual([
      [GUEST_SCRIPT_PATH, "0755", "b64", "root:root"],
      [GUEST_IDENTITY_ENV_PATH, "0644", "b64", "root:root"],
    ]);
    expect(decode(cfg, GUEST_SCRIPT_PATH)).toBe(loadScript());
    expect(decode(cfg, GUEST_IDENTITY_ENV_PATH)).toBe(renderIdentityEnv("web-01", ids));
    expect(cfg.runcmd).toEqual([
      [GUEST_SCRIPT_PATH, "--env", GUEST_IDENTITY_ENV_PATH, "--no-ssh-keys"],
    ]);
  });

  test("cloud-init's schema check accepts it, and rejects a broken one (so the check can fail)", async () => {
    const { userData } = renderSeed("yes", freshIds(), { hostnameFrom: "name" });
    const ok = await cloudInitSchema(userData);
    expect(ok.output).toMatch(/Valid cloud-config/);
    expect(ok.code).toBe(0);
    for (const [from, to] of [
      ["ssh_deletekeys: true", "ssh_deletekeys: maybe"],
      ['hostname: "yes"', "hostname: yes"],
      ['permissions: "0755"', "permissions: 755"],
    ] as const) {
      const broken = userData.replace(from, to);
      expect(broken).not.toBe(userData);
      const r = await cloudInitSchema(broken);
      expect(r.code, to).not.toBe(0);
      expect(r.output, to).toMatch(/schema errors/);
    }
  }, 60_000);

  test("VM names that look like YAML 1.1 booleans, numbers or dates stay strings", async () => {
    for (const name of YAML_LOOKALIKES) {
      const ids = freshIds();
      const { userData, metaData } = renderSeed(name, ids);
      expect((parseYaml11(userData, name) as { hostname: unknown }).hostname, name).toBe(name);
      expect((parseYaml11(metaData, name) as Record<string, unknown>)["local-hostname"]).toBe(name);
      // The YAML 1.2 reading (the yaml library's default) agrees.
      expect((parseYaml(userData) as { hostname: unknown }).hostname, name).toBe(name);
      expect(() =>
        checkUserData(userData, {
          hostname: name,
          script: loadScript(),
          identityEnv: renderIdentityEnv(name, ids),
        }),
      ).not.toThrow();
    }
    const r = await cloudInitSchema(renderSeed("0755", freshIds()).userData);
    expect(r.code).toBe(0);
  }, 60_000);

  test("reads back as exactly the objects built (property)", () => {
    fc.assert(
      fc.property(vmNameArb, idsArb, hostnameFromArb, (name, ids, from) => {
        const files = renderGuestFiles(name, ids, { hostnameFrom: from });
        const env = parseIdentityEnv(files.identityEnv);
        const cfg = checkUserData(files.seed.userData, {
          hostname: env.HOSTNAME,
          script: files.script,
          identityEnv: files.identityEnv,
        });
        expect(cfg).toEqual(
          buildCloudConfig({
            hostname: env.HOSTNAME,
            script: files.script,
            identityEnv: files.identityEnv,
          }),
        );
        expect(
          checkMetaData(files.seed.metaData, {
            instanceId: instanceIdFor(ids),
            hostname: env.HOSTNAME,
          }),
        ).toEqual({ "instance-id": instanceIdFor(ids), "local-hostname": env.HOSTNAME });
      }),
      { numRuns: 100 },
    );
  });

  test("the hostname follows hostnameFrom in both files and in the embedded identity.env", () => {
    const ids = freshIds();
    const { userData, metaData } = renderSeed("web-01", ids, { hostnameFrom: "machine-id" });
    const h = `glint-${ids.machine_id.slice(0, 8)}`;
    const cfg = cloudConfigSchema.parse(parseYaml11(userData, "user-data"));
    expect(cfg.hostname).toBe(h);
    expect((parseYaml11(metaData, "meta-data") as Record<string, string>)["local-hostname"]).toBe(
      h,
    );
    expect(parseIdentityEnv(decode(cfg, GUEST_IDENTITY_ENV_PATH)).HOSTNAME).toBe(h);
  });

  test("building refuses values outside the schema", () => {
    const good = { hostname: "web-01", script: "#!/bin/sh\n", identityEnv: "X=1\n" };
    expect(() => buildCloudConfig(good)).not.toThrow();
    for (const hostname of ["Web", "a b", "yes\nbootcmd: [reboot]", ""]) {
      expect(() => buildCloudConfig({ ...good, hostname }), hostname).toThrow();
    }
  });

  test("broken user-data or meta-data is rejected", () => {
    const ids = freshIds();
    const { userData, metaData } = renderSeed("web-01", ids);
    const expected = {
      hostname: "web-01",
      script: loadScript(),
      identityEnv: renderIdentityEnv("web-01", ids),
    };
    expect(() => checkUserData(userData, expected)).not.toThrow();

    const contents = [...userData.matchAll(/content: (\S+)$/gm)].map((m) => m[1] ?? "");
    expect(contents).toHaveLength(2);
    const env = contents[1] ?? "";
    const flipped = env.startsWith("I") ? `J${env.slice(1)}` : `I${env.slice(1)}`;
    const broken: [string, string, RegExp][] = [
      ["no header", userData.replace("#cloud-config\n", ""), /first line/],
      ["header not first", `\n${userData}`, /first line/],
      [
        "ssh_deletekeys false",
        userData.replace("ssh_deletekeys: true", "ssh_deletekeys: false"),
        /ssh_deletekeys/,
      ],
      [
        "YAML 1.1 boolean hostname",
        userData.replace("hostname: web-01", "hostname: yes"),
        /hostname/,
      ],
      ["duplicate key", `${userData}hostname: web-01\n`, /YAML/],
      [
        "bad indentation",
        userData.replace("    encoding: b64", "      encoding: b64"),
        /YAML|write_files/,
      ],
      ["unknown key", `${userData}bootcmd: [[reboot]]\n`, /bootcmd|Unrecognized/i],
      ["other identity.env", userData.replace(env, flipped), /write_files/],
      [
        "runcmd without --env",
        userData.replace(`    - --env\n    - ${GUEST_IDENTITY_ENV_PATH}\n`, ""),
        /runcmd/,
      ],
    ];
    for (const [what, text, re] of broken) {
      expect(text, what).not.toBe(userData);
      expect(() => checkUserData(text, expected), what).toThrow(re);
    }
    expect(() => checkUserData(userData, { ...expected, hostname: "other" })).toThrow(/hostname/);

    const meta = { instanceId: instanceIdFor(ids), hostname: "web-01" };
    expect(() => checkMetaData(metaData, meta)).not.toThrow();
    expect(() =>
      checkMetaData(metaData, { ...meta, instanceId: instanceIdFor(regenerate(ids, "disk")) }),
    ).toThrow(/instance-id/);
    expect(() => checkMetaData(`${metaData}extra: 1\n`, meta)).toThrow(GlintError);
    expect(() => checkMetaData("instance-id: [\n", meta)).toThrow(/YAML/);
  });
});

describe("meta-data", () => {
  test("instance-id and local-hostname; the instance-id changes with every generation", () => {
    const ids = freshIds();
    const a = renderSeed("vm", ids);
    expect(parseYaml11(a.metaData, "meta-data")).toEqual({
      "instance-id": `iid-${ids.vm_uuid}-g${ids.generation}`,
      "local-hostname": "vm",
    });
    expect(renderSeed("vm", ids)).toEqual(a);
    const seen = new Set([instanceIdFor(ids)]);
    let cur = ids;
    for (const policy of ["disk", "base", "nuke", "disk"] as const) {
      cur = regenerate(cur, policy);
      const meta = parseYaml11(renderSeed("vm", cur).metaData, "meta-data") as Record<
        string,
        string
      >;
      expect(meta["instance-id"]).toBe(instanceIdFor(cur));
      expect(seen.has(instanceIdFor(cur))).toBe(false);
      seen.add(instanceIdFor(cur));
    }
    // "disk" keeps vm_uuid: only the generation tells the instances apart.
    const d = regenerate(ids, "disk");
    expect(d.vm_uuid).toBe(ids.vm_uuid);
    expect(instanceIdFor(d)).not.toBe(instanceIdFor(ids));
  });
});
