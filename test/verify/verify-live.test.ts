/**
 * `glint run` opens QMP and the guest agent channel in the VM directory;
 * QmpClient and `glint verify` read a running (paused, -S) QEMU through them.
 * No guest runs, so the guest agent's rows are unavailable, with why.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GlintError } from "../../src/errors.js";
import { QmpClient } from "../../src/verify/qmp.js";
import { vmPaths } from "../../src/vm/layout.js";
import { startGlintRun } from "../e2e/guest/runner.js";
import { runCli as glint, runCliOk as glintOk, readIds } from "../support/cli.js";
import { tempDir as tempHome } from "../support/tmp.js";

let home: string;
let run: ReturnType<typeof startGlintRun>;

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not happen: ${run?.stderr()}`);
}

beforeAll(async () => {
  home = await tempHome("glint-verify-live-");
  await glintOk(["create", "v", "--home", home]);
  await glintOk(["create", "w", "--home", home]);
  run = startGlintRun(home, "v", ["-S"]);
  const p = vmPaths(home, "v");
  await waitFor(() => existsSync(p.qmpSocket) && existsSync(p.pidfile), "QEMU's QMP socket");
});

afterAll(async () => {
  await run?.stop();
  await fs.rm(home, { recursive: true, force: true });
});

describe("QMP and glint verify on a running VM", () => {
  it("QmpClient: the handshake, a query, and an unknown command as a GlintError", async () => {
    const ids = await readIds(home, "v");
    const qmp = await QmpClient.connect(vmPaths(home, "v").qmpSocket);
    try {
      expect(await qmp.execute("query-uuid")).toEqual({ UUID: ids.vm_uuid });
      await expect(qmp.execute("no-such-command")).rejects.toBeInstanceOf(GlintError);
      const status = (await qmp.execute("query-status")) as { status?: string };
      expect(status.status).toBe("prelaunch");
    } finally {
      qmp.close();
    }
  });

  it("glint verify --json: QEMU's UUID, generation ID and MAC match; the guest's rows are unavailable (no agent)", async () => {
    const ids = await readIds(home, "v");
    const r = await glint(["verify", "v", "--home", home, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [out] = JSON.parse(r.stdout) as {
      vm: string;
      ok: boolean;
      state: string;
      checks: {
        field: string;
        expected: string;
        seen: string | null;
        status: string;
        why?: string;
      }[];
    }[];
    expect(out?.vm).toBe("v");
    expect(out?.ok).toBe(true);
    expect(out?.state).toBe("running");
    const byField = new Map(out?.checks.map((c) => [c.field, c]));
    expect(byField.get("vm uuid")).toMatchObject({ status: "ok", seen: ids.vm_uuid });
    expect(byField.get("vm generation id")).toMatchObject({
      status: "ok",
      seen: ids.vm_generation_id,
    });
    expect(byField.get("nic mac")).toMatchObject({ status: "ok", seen: ids.mac_address });
    expect(byField.get("machine-id")).toMatchObject({ status: "unavailable", seen: null });
    expect(byField.get("machine-id")?.why).toMatch(/guest agent/);
  }, 60_000);

  it("identifiers.json that no longer matches the running QEMU: mismatch rows and exit code 1", async () => {
    const p = vmPaths(home, "v");
    const original = await fs.readFile(p.identifiers, "utf8");
    const ids = JSON.parse(original) as Record<string, unknown>;
    const other = await readIds(home, "w");
    try {
      await fs.writeFile(
        p.identifiers,
        JSON.stringify({ ...ids, vm_uuid: other.vm_uuid }, null, 2),
      );
      const r = await glint(["verify", "v", "--home", home]);
      expect(r.code).toBe(1);
      const line = r.stdout.split("\n").find((l) => l.includes("vm uuid"));
      expect(line).toMatch(/^MISMATCH\s+vm uuid\s+/);
      expect(line).toContain(other.vm_uuid);
      expect(r.stdout).toMatch(/^v \(running\): MISMATCH/);
    } finally {
      await fs.writeFile(p.identifiers, original);
    }
  }, 60_000);

  it("usage errors: no VM, and names with --all", async () => {
    expect((await glint(["verify", "--home", home])).code).toBe(2);
    expect((await glint(["verify", "v", "--all", "--home", home])).code).toBe(2);
    expect((await glint(["verify", "nope", "--home", home])).code).toBe(1);
  });
});

describe("glint run's control sockets", () => {
  it("--dry-run shows -qmp and the guest agent's virtio-serial port, with commas escaped", async () => {
    const h = await tempHome("glint-verify,comma-");
    try {
      await glintOk(["create", "c", "--home", h]);
      const r = await glint(["run", "c", "--home", h, "--dry-run", "--json"]);
      const argv = JSON.parse(r.stdout) as string[];
      const p = vmPaths(h, "c");
      const esc = (s: string) => s.replaceAll(",", ",,");
      expect(argv[argv.indexOf("-qmp") + 1]).toBe(`unix:${esc(p.qmpSocket)},server=on,wait=off`);
      expect(argv).toContain(`socket,path=${esc(p.qgaSocket)},server=on,wait=off,id=glintqga`);
      expect(argv).toContain(
        "virtserialport,bus=glintserial.0,chardev=glintqga,name=org.qemu.guest_agent.0",
      );
      expect(path.dirname(p.qgaSocket)).toBe(p.dir);
    } finally {
      await fs.rm(h, { recursive: true, force: true });
    }
  });
});
