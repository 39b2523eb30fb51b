/** VM names, home resolution and the directory layout. */
import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import { VM_NAME_RE } from "../../src/identity/formats.js";
import {
  assertVmName,
  resolveHome,
  storePaths,
  templatePath,
  vmPaths,
} from "../../src/vm/layout.js";

const nameArb = fc
  .tuple(
    fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789".split("")),
    fc.string({ unit: fc.constantFrom(..."abcxyz019-".split("")), maxLength: 61 }),
    fc.constantFrom(..."az09".split("")),
  )
  .map(([a, b, c]) => a + b + c);

describe("VM names", () => {
  it.each(["a", "vm1", "0", "my-vm", "a".repeat(63), "x-1"])("accepts %s", (name) => {
    expect(() => assertVmName(name)).not.toThrow();
  });

  it.each([
    "",
    "../x",
    "..",
    ".",
    "a/b",
    "Upper",
    "-x",
    "a".repeat(64),
    "a".repeat(200),
    "a b",
    "a_b",
    "a.b",
    "vm\n",
    "é",
  ])("rejects %j with a usage error", (name) => {
    let err: unknown;
    try {
      assertVmName(name);
    } catch (error) {
      err = error;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect((err as UsageError).message).toContain("invalid VM name");
    expect((err as UsageError).message).not.toContain("\n");
    expect((err as UsageError).message.length).toBeLessThan(250);
  });

  it("every accepted name stays a direct child of the home", () => {
    fc.assert(
      fc.property(nameArb, (name) => {
        const p = vmPaths("/srv/vms", name);
        expect(path.dirname(p.dir)).toBe("/srv/vms");
        expect(path.basename(p.dir)).toBe(name);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (name) => {
        if (VM_NAME_RE.test(name)) expect(path.dirname(vmPaths("/h", name).dir)).toBe("/h");
        else expect(() => vmPaths("/h", name)).toThrow(UsageError);
      }),
    );
  });
});

describe("resolveHome", () => {
  it("prefers --home, then $GLINT_HOME, then ./vms_linux, always absolute", () => {
    expect(resolveHome("/a", { GLINT_HOME: "/b" })).toBe("/a");
    expect(resolveHome(undefined, { GLINT_HOME: "/b" })).toBe("/b");
    expect(resolveHome(undefined, {})).toBe(path.resolve("vms_linux"));
    expect(resolveHome("rel", {})).toBe(path.resolve("rel"));
  });

  it("refuses an empty --home or $GLINT_HOME (it would mean the current directory)", () => {
    expect(() => resolveHome("", {})).toThrow(UsageError);
    expect(() => resolveHome("", { GLINT_HOME: "/b" })).toThrow(/--home is empty/);
    expect(() => resolveHome(undefined, { GLINT_HOME: "" })).toThrow(UsageError);
    expect(() => resolveHome(undefined, { GLINT_HOME: "" })).toThrow(/GLINT_HOME is set but empty/);
    // An explicit --home wins over an empty $GLINT_HOME.
    expect(resolveHome("/a", { GLINT_HOME: "" })).toBe("/a");
  });
});

describe("VM names are hostname labels", () => {
  it.each(["x-", "a-b-", "-"])("rejects %j, which ends (or starts) with '-'", (name) => {
    expect(() => assertVmName(name)).toThrow(UsageError);
    expect(VM_NAME_RE.test(name)).toBe(false);
  });
});

describe("layout", () => {
  it("puts the seed's files in the VM directory and locks outside it", () => {
    const p = vmPaths("/h", "vm");
    expect(p.identifiers).toBe("/h/vm/identifiers.json");
    expect(p.config).toBe("/h/vm/config.json");
    expect(p.base).toBe("/h/vm/base.qcow2");
    expect(p.overlay).toBe("/h/vm/overlay.qcow2");
    expect(p.uefiSeed).toBe("/h/vm/uefi-seed.fd");
    expect(p.uefiInstance).toBe("/h/vm/uefi-instance.fd");
    expect(p.script).toBe("/h/vm/shared/set_identifiers.sh");
    expect(p.identityEnv).toBe("/h/vm/shared/identity.env");
    expect(p.history).toBe("/h/vm/history");
    expect(p.lock).toBe("/h/.glint/vms/vm.lock");
    expect(p.journal).toBe("/h/vm/.pending.json");
    expect(p.pidfile).toBe("/h/vm/qemu.pid");
    expect(p.seedIso).toBe("/h/vm/seed.iso");
    expect(p.configDrive).toBe("/h/vm/config-drive.iso");
    expect(storePaths("/h")).toEqual({
      dir: "/h/.glint",
      lock: "/h/.glint/store.lock",
      vmLocks: "/h/.glint/vms",
      tpmCa: "/h/.glint/tpm-ca",
      registryDb: "/h/.glint/registry.db",
      homeId: "/h/.glint/home-id",
      config: "/h/.glint/config.json",
      audit: "/h/.glint/audit.jsonl",
      auditHead: "/h/.glint/audit.head",
      auditLock: "/h/.glint/audit.lock",
      auditPending: "/h/.glint/audit-pending",
      archive: "/h/.glint/archive",
      templates: "/h/.glint/templates",
      batches: "/h/.glint/batches",
      staging: "/h/.glint/staging",
    });
    expect(templatePath("/h", "web")).toBe("/h/.glint/templates/web.json");
    expect(() => templatePath("/h", "../web")).toThrow(/invalid template name/);
  });
});
