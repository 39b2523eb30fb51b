import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { errorLine } from "../../src/cli/advice.js";
import { GlintError, MissingToolError, UsageError } from "../../src/errors.js";
import {
  createTpmState,
  prepareTpmReset,
  readEkFingerprint,
  type SwtpmProcess,
  startSwtpm,
  TPM2_PERMALL,
} from "../../src/firmware/index.js";
import { tempDir } from "../support/tmp.js";

const execFileAsync = promisify(execFile);
const FINGERPRINT_RE = /^sha256:[0-9a-f]{64}$/;

let tmp: string;
const running: SwtpmProcess[] = [];
const children: ChildProcess[] = [];

beforeEach(async () => {
  tmp = await tempDir("glint-swtpm-test-");
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

/** startSwtpm, remembering the process so that afterEach stops it even if a test fails. */
async function start(...args: Parameters<typeof startSwtpm>): Promise<SwtpmProcess> {
  const tpm = await startSwtpm(...args);
  running.push(tpm);
  return tpm;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

async function exists(file: string): Promise<boolean> {
  return fs.lstat(file).then(
    () => true,
    () => false,
  );
}

/** EK certificates embedded in a permall file (a deliberately naive re-implementation). */
function ekCertificates(permall: Buffer): X509Certificate[] {
  const found: X509Certificate[] = [];
  for (let i = 0; i + 4 < permall.length; i++) {
    if (permall[i] !== 0x30 || permall[i + 1] !== 0x82) continue;
    try {
      const cert = new X509Certificate(permall.subarray(i, i + 4 + permall.readUInt16BE(i + 2)));
      if (cert.keyUsage?.includes("2.23.133.8.1")) found.push(cert);
    } catch {
      // not a certificate
    }
  }
  return found;
}

async function tempEntries(): Promise<string[]> {
  return (await fs.readdir(tmp)).filter((n) => n.includes(".tmp-"));
}

describe("createTpmState / readEkFingerprint", { timeout: 60_000 }, () => {
  it("manufactures a TPM whose EK certificate is in its NVRAM", async () => {
    const dir = path.join(tmp, "tpm");
    await createTpmState(dir, { vmName: "vm-one" });
    const st = await fs.stat(path.join(dir, TPM2_PERMALL));
    expect(st.size).toBeGreaterThan(1000);
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);

    const fingerprint = await readEkFingerprint(dir);
    expect(fingerprint).toMatch(FINGERPRINT_RE);
    expect(await readEkFingerprint(dir)).toBe(fingerprint); // stable
    expect(await tempEntries()).toEqual([]);

    // The certificate carries the VM name as subject, proving it came from our setup.
    const permall = await fs.readFile(path.join(dir, TPM2_PERMALL));
    expect(permall.includes(Buffer.from("vm-one"))).toBe(true);
  });

  it("gives every TPM a different EK", async () => {
    const a = path.join(tmp, "a");
    const b = path.join(tmp, "b");
    await createTpmState(a);
    await createTpmState(b);
    expect(await readEkFingerprint(a)).not.toBe(await readEkFingerprint(b));
  });

  it("prepareTpmReset + commit swaps in a new EK; abort changes nothing", async () => {
    const dir = path.join(tmp, "tpm");
    await createTpmState(dir);
    const original = await readEkFingerprint(dir);
    // A leftover volatile state of the old TPM must not survive the swap.
    await fs.writeFile(path.join(dir, "tpm2-00.volatilestate"), "old");

    const aborted = await prepareTpmReset(dir);
    expect(await tempEntries()).toHaveLength(1);
    expect(await readEkFingerprint(dir)).toBe(original);
    await aborted.abort();
    expect(await tempEntries()).toEqual([]);
    expect(await readEkFingerprint(dir)).toBe(original);
    expect(await exists(path.join(dir, "tpm2-00.volatilestate"))).toBe(true);

    const prepared = await prepareTpmReset(dir, { vmName: "vm-two" });
    expect(await readEkFingerprint(dir)).toBe(original); // not visible before commit
    await prepared.commit();
    const renewed = await readEkFingerprint(dir);
    expect(renewed).toMatch(FINGERPRINT_RE);
    expect(renewed).not.toBe(original);
    expect(await exists(path.join(dir, "tpm2-00.volatilestate"))).toBe(false);
    expect(await tempEntries()).toEqual([]);
  });

  it("matches the EK public key swtpm_setup reports, computed independently", async () => {
    // Independent route: let swtpm_setup itself export the EK certificates as files.
    const state = path.join(tmp, "state");
    const certs = path.join(tmp, "certs");
    await fs.mkdir(state);
    await fs.mkdir(certs);
    const conf = path.join(tmp, "setup.conf");
    await fs.mkdir(path.join(tmp, "ca"));
    await fs.writeFile(
      path.join(tmp, "localca.conf"),
      ["signingkey", "issuercert", "certserial"]
        .map((k) => `${k} = ${tmp}/ca/${k}`)
        .concat(`statedir = ${tmp}/ca`)
        .join("\n"),
    );
    await fs.writeFile(
      conf,
      `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${tmp}/localca.conf\n`,
    );
    await execFileAsync("swtpm_setup", [
      "--tpm2",
      "--tpmstate",
      state,
      "--create-ek-cert",
      "--overwrite",
      "--config",
      conf,
      "--write-ek-cert-files",
      certs,
    ]);
    const der = await fs.readFile(path.join(certs, "ek-rsa2048.crt"));
    const spki = new X509Certificate(der).publicKey.export({ type: "spki", format: "der" });
    const expected = `sha256:${createHash("sha256").update(spki).digest("hex")}`;
    expect(await readEkFingerprint(state)).toBe(expected);
  });

  it("keeps a CA in caDir and reuses it; the EK certificate is signed by it", async () => {
    const ca = path.join(tmp, "ca");
    const a = path.join(tmp, "a");
    await createTpmState(a, { caDir: ca });
    const issuer = await fs.readFile(path.join(ca, "issuercert.pem"), "utf8");
    expect(issuer).toContain("BEGIN CERTIFICATE");
    await createTpmState(path.join(tmp, "b"), { caDir: ca });
    expect(await fs.readFile(path.join(ca, "issuercert.pem"), "utf8")).toBe(issuer);

    const ek = ekCertificates(await fs.readFile(path.join(a, TPM2_PERMALL)));
    expect(ek.length).toBeGreaterThan(0);
    const issuerCert = new X509Certificate(issuer);
    for (const cert of ek) expect(cert.verify(issuerCert.publicKey)).toBe(true);
  });

  it("copes with commas and spaces in the state path", async () => {
    const dir = path.join(tmp, "odd, dir=1 #x", "tpm");
    await createTpmState(dir);
    expect(await readEkFingerprint(dir)).toMatch(FINGERPRINT_RE);
  });

  it("names the Debian package when swtpm is missing", async () => {
    const env = { PATH: path.join(tmp, "empty-bin") };
    const error = await createTpmState(path.join(tmp, "t"), { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingToolError);
    expect(errorLine(error as GlintError)).toBe(
      "swtpm not found: install it with `apt-get install swtpm`",
    );
    expect(await tempEntries()).toEqual([]);
  });

  it("rejects a vmName that would not be a plain certificate CN", async () => {
    await expect(createTpmState(path.join(tmp, "t"), { vmName: "a,b=c" })).rejects.toThrow(
      UsageError,
    );
  });

  it("explains missing or foreign state", async () => {
    await expect(readEkFingerprint(tmp)).rejects.toThrow(`no TPM state in ${tmp}`);
    await fs.writeFile(path.join(tmp, TPM2_PERMALL), Buffer.alloc(4096, 0x30));
    const error = await readEkFingerprint(tmp).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GlintError);
    expect((error as Error).message).toMatch(/^no EK certificate in /);
  });
});

describe("startSwtpm", { timeout: 60_000 }, () => {
  it("starts swtpm, creates the socket, and stop() removes both", async () => {
    const dir = path.join(tmp, "tpm");
    await createTpmState(dir);
    const socketPath = path.join(tmp, "run", "swtpm.sock");
    const tpm = await start(dir, socketPath);
    expect(tpm.socket).toBe(socketPath);
    expect((await fs.lstat(socketPath)).isSocket()).toBe(true);
    expect(alive(tpm.pid)).toBe(true);

    await tpm.stop();
    expect(await until(() => !alive(tpm.pid), 2000)).toBe(true);
    expect(await exists(socketPath)).toBe(false);
    await tpm.stop(); // idempotent
  });

  it("moves a too-long socket path to a short temp dir and cleans it up", async () => {
    const dir = path.join(tmp, "odd,state dir");
    await createTpmState(dir);
    const longDir = path.join(tmp, "x".repeat(120));
    const tpm = await start(dir, path.join(longDir, "swtpm.sock"));
    expect(Buffer.byteLength(tpm.socket)).toBeLessThanOrEqual(107);
    expect(path.basename(path.dirname(tpm.socket))).toMatch(/^glint-tpm-/);
    expect((await fs.lstat(tpm.socket)).isSocket()).toBe(true);
    await tpm.stop();
    expect(await exists(path.dirname(tpm.socket))).toBe(false);
  });

  it("explains a missing TPM state", async () => {
    await expect(start(path.join(tmp, "none"), path.join(tmp, "s.sock"))).rejects.toThrow(
      /^no TPM state in .*tpm2-00\.permall is missing$/,
    );
  });

  it("reports swtpm's own error when it exits early, and times out clearly", async () => {
    const dir = path.join(tmp, "tpm");
    await createTpmState(dir);
    const bin = path.join(tmp, "bin");
    await fs.mkdir(bin);
    const fake = path.join(bin, "swtpm");
    await fs.writeFile(fake, "#!/bin/sh\necho 'swtpm: simulated failure' >&2\nexit 3\n", {
      mode: 0o755,
    });
    const env = {
      ...process.env,
      GLINT_SWTPM: undefined,
      PATH: `${bin}:${process.env.PATH ?? ""}`,
    };
    const socket = path.join(tmp, "b.sock");
    const error = await start(dir, socket, { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GlintError);
    expect((error as Error).message).toBe(
      `swtpm exited with status 3 before creating ${socket}: swtpm: simulated failure`,
    );

    await fs.writeFile(fake, "#!/bin/sh\necho 'swtpm: stuck' >&2\nexec sleep 30\n");
    const started = Date.now();
    const timeout = await start(dir, socket, { env, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((timeout as Error).message).toBe(`swtpm did not create ${socket} in time: swtpm: stuck`);
    expect(await exists(socket)).toBe(false);
  });

  it("refuses to replace a non-socket file at the socket path", async () => {
    const dir = path.join(tmp, "tpm");
    await createTpmState(dir);
    const socket = path.join(tmp, "not-a-socket");
    await fs.writeFile(socket, "keep me");
    await expect(start(dir, socket)).rejects.toThrow(/is not a socket/);
    expect(await fs.readFile(socket, "utf8")).toBe("keep me");
  });

  it("QEMU connects to it as a TPM 2.0 emulator backend", async () => {
    const dir = path.join(tmp, "tpm");
    await createTpmState(dir, { vmName: "qemu-check" });
    const tpm = await start(dir, path.join(tmp, "swtpm.sock"));

    let stderr = "";
    const qemu = spawn(
      "qemu-system-x86_64",
      [
        "-machine",
        "q35,accel=tcg",
        "-display",
        "none",
        "-S",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-chardev",
        `socket,id=chrtpm,path=${tpm.socket}`,
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        "tpm-crb,tpmdev=tpm0",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(qemu);
    qemu.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    await new Promise((r) => setTimeout(r, 2000));
    expect({ exitCode: qemu.exitCode, signal: qemu.signalCode, stderr }).toEqual({
      exitCode: null,
      signal: null,
      stderr: "",
    });
    expect(alive(tpm.pid)).toBe(true);

    // swtpm runs with --terminate: it exits once its client goes away, which
    // proves QEMU was really connected to it.
    qemu.kill("SIGKILL");
    expect(await until(() => !alive(tpm.pid), 5000)).toBe(true);
  });
});

describe("temp directories of killed setups", () => {
  it("createTpmState removes swtpm_setup work dirs left by dead processes, and keeps live ones", async () => {
    const { spawnSync } = await import("node:child_process");
    const deadPid = spawnSync("true").pid ?? 0;
    const { tmpdir } = await import("node:os");
    const root = tmpdir();
    const dead = path.join(root, `glint-swtpm-setup-${deadPid}-zzzzzz`);
    const live = path.join(root, `glint-swtpm-setup-${process.pid}-yyyyyy`);
    await fs.mkdir(dead, { recursive: true });
    await fs.mkdir(live, { recursive: true });
    const state = await tempDir("glint-tpm-state-");
    try {
      await createTpmState(path.join(state, "tpm"));
      await expect(fs.access(dead)).rejects.toThrow();
      await fs.access(live);
    } finally {
      await fs.rm(live, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("a TPM manufacturing killed midway", () => {
  it("leaves nothing in the temp directory once the next setup has run", async () => {
    const tmpdir = path.join(tmp, "tmpdir");
    await fs.mkdir(tmpdir);
    const env = { ...process.env, TMPDIR: tmpdir };
    const script = `
      import { createTpmState } from ${JSON.stringify(path.resolve("dist/firmware/swtpm.js"))};
      await createTpmState(${JSON.stringify(path.join(tmp, "killed", "tpm"))});
    `;
    // Its own process group: the kill takes glint, swtpm_setup, swtpm and swtpm_localca at once.
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env,
      stdio: "ignore",
      detached: true,
    });
    children.push(child);
    // Kill it while swtpm_setup holds its certificate directory.
    const certsDir = async () =>
      (await fs.readdir(tmpdir, { recursive: true })).some((n) =>
        String(n).includes("swtpm_setup.certs."),
      );
    expect(await until(certsDir, 30_000)).toBe(true);
    process.kill(-(child.pid ?? 0), "SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(await fs.readdir(tmpdir)).not.toEqual([]);

    await createTpmState(path.join(tmp, "next", "tpm"), { env });
    expect(await fs.readdir(tmpdir)).toEqual([]);
  }, 60_000);
});
