/**
 * Software TPM 2.0 (swtpm) for a VM: manufacture a fresh TPM (new endorsement
 * seed → new EK, EK + platform certificates in NVRAM), swap a fresh one in
 * transactionally, tell TPMs apart by their EK, and run the swtpm sidecar
 * that QEMU's `-tpmdev emulator` connects to.
 *
 * Certificates: swtpm_setup calls swtpm_localca, whose default config
 * (/etc/swtpm-localca.conf) keeps a host-wide CA in /var/lib/swtpm-localca
 * (owned by `tss`). Glint does not touch that: every swtpm_setup run gets its
 * own `--config`, pointing swtpm_localca at a CA directory Glint owns — by
 * default a throwaway CA made for that run (so TPMs of different VMs share no
 * issuer), or `caDir` to keep one CA across runs (e.g. one per Glint home).
 *
 * Path quirks handled here: swtpm's own option syntax is comma-separated
 * key=value with no escaping (`dir=/a,b` breaks), swtpm_setup splits `--tpm`
 * on spaces, and swtpm_setup.conf values cannot hold `#`. So every path that
 * reaches those places goes through a symlink in a private temp directory
 * with a plain name. Unix socket paths longer than 107 bytes (or with a comma)
 * are replaced by a socket in a short temp directory.
 */
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { GlintError, UsageError } from "../errors.js";
import { requireTool } from "../host/tools.js";
import { type PreparedChange, preparedChange } from "../txn/change.js";
import { fsyncDir, fsyncFile, tempPathFor } from "../vm/atomic.js";
import { isFile, readNoFollow } from "../vm/fsutil.js";
import { TPM2_PERMALL } from "../vm/layout.js";
import { lastLine, ownedTempDir, plainTmpRoot } from "./swtpm-util.js";

const execFileAsync = promisify(execFile);

/** swtpm's TPM 2 permanent state (holds the seeds, persistent keys and NV indices). */
export { TPM2_PERMALL };

/** State files that only make sense together with the permall they were written with. */
const DEPENDENT_STATE_FILES = [
  "tpm2-00.volatilestate",
  "tpm2-00.savestate",
  "tpm-00.permall",
  "tpm-00.volatilestate",
  "tpm-00.savestate",
];

/** TCG OID of the EK certificate extended key usage (tcg-kp-EKCertificate). */
const TCG_KP_EK_CERTIFICATE = "2.23.133.8.1";

/** Becomes the EK certificate's subject CN via `--vmid`. */
const VMID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface TpmSetupOptions {
  /** Subject CN of the EK and platform certificates (swtpm_setup `--vmid`). */
  vmName?: string;
  /**
   * Keep the local CA that signs the EK/platform certificates in this
   * directory (created if missing, reused across runs). Default: a throwaway
   * CA per run.
   */
  caDir?: string;
  /** Environment for the tools (PATH lookup, TMPDIR). */
  env?: NodeJS.ProcessEnv;
  /** Kill swtpm_setup after this long. Default 60 s. */
  timeoutMs?: number;
}

/**
 * Manufacture a fresh TPM 2.0 in `dir` (created if missing, mode 0700): a new
 * endorsement seed, RSA-2048 and ECC P-384 EKs, their certificates and a
 * platform certificate in NVRAM. Replaces any TPM state already in `dir`
 * (atomically: the new state is made next to it and renamed in).
 */
export async function createTpmState(dir: string, options: TpmSetupOptions = {}): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(dir)), { recursive: true });
  const prepared = await prepareTpmReset(dir, options);
  try {
    await prepared.commit();
  } catch (error) {
    await prepared.abort();
    throw error;
  }
}

/**
 * Two-phase TPM reset. Prepare manufactures a new TPM in a temp directory
 * next to `dir` (same file system; the name matches `removeStaleTemps`).
 * `commit()` removes the old state's volatile/suspend files, renames the new
 * `tpm2-00.permall` over the old one (a single atomic rename — a crash leaves
 * either the old TPM or the new one, never neither) and fsyncs `dir`;
 * `abort()` removes the temp directory. swtpm must not be running on `dir`
 * during `commit()`.
 *
 * (The permall file is the whole TPM 2 state after swtpm_setup, so swapping
 * that file is equivalent to swapping the directory, without the window in
 * which `dir` does not exist.)
 */
export async function prepareTpmReset(
  dir: string,
  options: TpmSetupOptions = {},
): Promise<PreparedChange> {
  const target = path.resolve(dir);
  const tmp = tempPathFor(target);
  await fs.mkdir(tmp, { mode: 0o700 });
  try {
    await runSwtpmSetup(tmp, target, options);
    await fsyncFile(path.join(tmp, TPM2_PERMALL));
    await fsyncDir(tmp);
  } catch (error) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw error;
  }

  return preparedChange({
    what: "TPM reset",
    async commit(markCommitted) {
      if ((await fs.mkdir(target, { recursive: true, mode: 0o700 })) !== undefined) {
        await fsyncDir(path.dirname(target));
      }
      for (const name of DEPENDENT_STATE_FILES) {
        await fs.rm(path.join(target, name), { force: true });
      }
      // Not renameIntoPlace: the source lives in the temp directory (which
      // abort() removes), and the swap is done as soon as the rename is.
      await fs.rename(path.join(tmp, TPM2_PERMALL), path.join(target, TPM2_PERMALL));
      markCommitted();
      await fsyncDir(target);
      await fs.rm(tmp, { recursive: true, force: true });
    },
    abort: () => fs.rm(tmp, { recursive: true, force: true }),
  });
}

/** Run swtpm_setup so that it writes a new TPM 2 into `stateDir`. */
async function runSwtpmSetup(
  stateDir: string,
  shownDir: string,
  options: TpmSetupOptions,
): Promise<void> {
  const env = options.env ?? process.env;
  if (options.vmName !== undefined && !VMID_RE.test(options.vmName)) {
    throw new UsageError(
      `invalid TPM vmName ${JSON.stringify(options.vmName)}: use letters, digits, '.', '_' and '-' (at most 63)`,
    );
  }
  const swtpm = await requireTool("swtpm", env);
  const swtpmSetup = await requireTool("swtpm_setup", env);
  // swtpm_setup runs swtpm_localca itself: found here (GLINT_SWTPM_LOCALCA or
  // PATH) and handed to it through create_certs_tool in swtpm_setup.conf.
  const swtpmLocalca = await requireTool("swtpm_localca", env);

  const work = await ownedTempDir(plainTmpRoot(env), "glint-swtpm-setup-");
  try {
    const bin = path.join(work, "bin");
    await fs.mkdir(bin);
    await fs.symlink(swtpm, path.join(bin, "swtpm"));
    await fs.symlink(swtpmLocalca, path.join(bin, "swtpm_localca"));
    await fs.symlink(path.resolve(stateDir), path.join(work, "state"));
    const ca = path.join(work, "ca");
    if (options.caDir === undefined) {
      await fs.mkdir(ca, { mode: 0o700 });
    } else {
      await fs.mkdir(options.caDir, { recursive: true, mode: 0o700 });
      await fs.symlink(path.resolve(options.caDir), ca);
    }

    const localcaConf = path.join(work, "swtpm-localca.conf");
    const localcaOptions = path.join(work, "swtpm-localca.options");
    const setupConf = path.join(work, "swtpm_setup.conf");
    await fs.writeFile(
      localcaConf,
      [
        `statedir = ${ca}`,
        `signingkey = ${ca}/signkey.pem`,
        `issuercert = ${ca}/issuercert.pem`,
        `certserial = ${ca}/certserial`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    await fs.writeFile(
      localcaOptions,
      ["--platform-manufacturer glint", "--platform-version 2.1", "--platform-model QEMU", ""].join(
        "\n",
      ),
      { mode: 0o600 },
    );
    await fs.writeFile(
      setupConf,
      [
        `create_certs_tool = ${path.join(bin, "swtpm_localca")}`,
        `create_certs_tool_config = ${localcaConf}`,
        `create_certs_tool_options = ${localcaOptions}`,
        "active_pcr_banks = sha256",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );

    const logfile = path.join(work, "setup.log");
    const argv = [
      "--tpm2",
      "--tpmstate",
      path.join(work, "state"),
      // swtpm_setup splits this value on spaces: hence the plain symlink path.
      "--tpm",
      `${path.join(bin, "swtpm")} socket`,
      "--config",
      setupConf,
      "--logfile",
      logfile,
      "--create-ek-cert",
      "--create-platform-cert",
      "--overwrite",
      ...(options.vmName === undefined ? [] : ["--vmid", options.vmName]),
    ];
    // swtpm_setup makes its certificate directory (swtpm_setup.certs.XXXXXX)
    // in $TMPDIR: inside the work directory, a killed setup's is removed with it.
    const setupTmp = path.join(work, "tmp");
    await fs.mkdir(setupTmp, { mode: 0o700 });
    try {
      await execFileAsync(swtpmSetup, argv, {
        env: { ...env, TMPDIR: setupTmp },
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 1024 * 1024,
      });
    } catch (error) {
      const log = await fs.readFile(logfile, "utf8").catch(() => "");
      const stderr = (error as { stderr?: unknown }).stderr;
      const detail = lastLine(`${log}\n${typeof stderr === "string" ? stderr : ""}`);
      throw new GlintError(
        `swtpm_setup failed to create a TPM for ${shownDir}${detail === "" ? "" : `: ${detail}`}`,
        { cause: error },
      );
    }
    if (!(await isFile(path.join(stateDir, TPM2_PERMALL)))) {
      throw new GlintError(`swtpm_setup wrote no ${TPM2_PERMALL} for ${shownDir}`);
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/**
 * A fingerprint of the TPM's endorsement key: `sha256:<hex>` of the
 * SubjectPublicKeyInfo (DER) of the RSA EK — or, if there is no RSA EK, of
 * the first EK found.
 *
 * It is read from the TPM state itself, not from a side file: swtpm_setup
 * stores the EK certificates (DER) in the TPM's NV indices (0x01c00002 RSA,
 * 0x01c00016 ECC), and swtpm keeps NV contents verbatim in `tpm2-00.permall`
 * (the state is not encrypted: Glint passes no `--key`). The certificates are
 * found by parsing every embedded DER SEQUENCE as an X.509 certificate and
 * keeping those whose extended key usage is tcg-kp-EKCertificate
 * (2.23.133.8.1); the platform certificate has 2.23.133.8.2 and is ignored.
 * The EK public key is derived from the endorsement seed, so a new seed (every
 * swtpm_setup run) means a new fingerprint, while serials, dates and the CA
 * that signed the certificate do not enter it.
 */
export async function readEkFingerprint(dir: string): Promise<string> {
  const file = path.join(dir, TPM2_PERMALL);
  // Never through a symlink (a VM's TPM state is never one).
  const state = (await readNoFollow(file))?.data;
  if (state === undefined) {
    throw new GlintError(`no TPM state in ${dir}: ${TPM2_PERMALL} is missing`);
  }
  const eks = embeddedCertificates(state).filter((c) =>
    c.keyUsage?.includes(TCG_KP_EK_CERTIFICATE),
  );
  const ek = eks.find((c) => c.publicKey.asymmetricKeyType === "rsa") ?? eks[0];
  if (ek === undefined) {
    throw new GlintError(
      `no EK certificate in ${file}: the TPM was not created by Glint (swtpm_setup --create-ek-cert) or its state is encrypted`,
    );
  }
  const spki = ek.publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/** Every DER X.509 certificate (long-form 2-byte length) embedded in `data`. */
function embeddedCertificates(data: Buffer): X509Certificate[] {
  const found: X509Certificate[] = [];
  let i = data.indexOf(0x30);
  while (i !== -1 && i + 4 <= data.length) {
    if (data[i + 1] === 0x82) {
      const end = i + 4 + data.readUInt16BE(i + 2);
      if (end <= data.length) {
        try {
          found.push(new X509Certificate(data.subarray(i, end)));
          i = data.indexOf(0x30, end);
          continue;
        } catch {
          // not a certificate; keep scanning
        }
      }
    }
    i = data.indexOf(0x30, i + 1);
  }
  return found;
}
