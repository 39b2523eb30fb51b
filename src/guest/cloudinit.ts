/**
 * cloud-init NoCloud seed: `<vm>/seed.iso`, an ISO 9660 volume labelled
 * `cidata` holding `meta-data` and `user-data` (rendered from
 * templates/cidata/*.tmpl). The instance-id changes with every identity
 * generation, so cloud-init treats a regenerated VM as a new instance.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { GlintError, MissingToolError } from "../errors.js";
import { UUID_V4_RE, VM_NAME_RE } from "../identity/formats.js";
import { parseIdentifiers, type SystemIdentifiers } from "../identity/model.js";
import { runTool } from "../qemu/tools.js";
import { type PreparedChange, preparedChange } from "../txn/change.js";
import { fsyncFile, renameIntoPlace, tempPathFor } from "../vm/atomic.js";
import { assertVmName, type VmPaths } from "../vm/layout.js";
import { loadTemplate, type PlaceholderSpec, renderTemplate } from "./render.js";
import {
  checkHostnameFrom,
  type GuestOptions,
  hostnameFor,
  renderValidatedScript,
  writeRenderedScriptTemp,
} from "./script.js";

export const META_DATA_TEMPLATE = "cidata/meta-data.tmpl";
export const USER_DATA_TEMPLATE = "cidata/user-data.tmpl";

/** The NoCloud volume label cloud-init looks for. */
export const CIDATA_LABEL = "cidata";

/** Where user-data installs the script inside the guest. */
export const GUEST_SCRIPT_PATH = "/usr/local/sbin/glint-set-identifiers";

export interface SeedFiles {
  readonly metaData: string;
  readonly userData: string;
}

export interface SeedIsoOptions {
  /**
   * Environment for finding and running genisoimage (GLINT_GENISOIMAGE, PATH);
   * default process.env.
   */
  readonly env?: NodeJS.ProcessEnv;
}

export type SeedOptions = GuestOptions & SeedIsoOptions;

const GENERATION_RE = /^[1-9][0-9]{0,9}$/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const INSTANCE_ID_RE =
  /^iid-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-g[1-9][0-9]*$/;

export const META_DATA_SPEC: PlaceholderSpec = {
  VM_UUID: UUID_V4_RE,
  GENERATION: GENERATION_RE,
  HOSTNAME: VM_NAME_RE,
};

export const USER_DATA_SPEC: PlaceholderSpec = {
  VM_NAME: VM_NAME_RE,
  GENERATION: GENERATION_RE,
  HOSTNAME: VM_NAME_RE,
  SCRIPT_B64: BASE64_RE,
};

/** meta-data, as cloud-init reads it. */
export const metaDataSchema = z.strictObject({
  "instance-id": z.string().regex(INSTANCE_ID_RE),
  "local-hostname": z.string().regex(VM_NAME_RE),
});

/** The cloud-config keys Glint's user-data uses (and no others). */
export const cloudConfigSchema = z.strictObject({
  preserve_hostname: z.literal(false),
  hostname: z.string().regex(VM_NAME_RE),
  ssh_deletekeys: z.literal(true),
  ssh_genkeytypes: z.array(z.enum(["rsa", "ecdsa", "ed25519"])).min(1),
  write_files: z
    .array(
      z.strictObject({
        path: z.string().regex(/^\/[A-Za-z0-9/._-]+$/),
        owner: z.literal("root:root"),
        permissions: z.string().regex(/^0[0-7]{3}$/),
        encoding: z.literal("b64"),
        content: z.string().regex(BASE64_RE),
      }),
    )
    .length(1),
  runcmd: z.array(z.array(z.string().min(1)).min(1)).min(1),
  power_state: z.strictObject({
    mode: z.literal("reboot"),
    message: z.string().min(1),
    timeout: z.number().int().positive(),
    condition: z.array(z.string().min(1)).min(1),
  }),
});

export type CloudConfig = z.infer<typeof cloudConfigSchema>;

/** `iid-<vm_uuid>-g<generation>`: new on every regeneration (and on nuke). */
export function instanceIdFor(ids: SystemIdentifiers): string {
  return `iid-${ids.vm_uuid}-g${ids.generation}`;
}

/**
 * Parse YAML the way cloud-init's PyYAML does (YAML 1.1, so `yes`/`no`/`on`
 * are booleans), refusing duplicate keys and any parse error or warning.
 */
function parseYaml(text: string, what: string): unknown {
  const doc = parseDocument(text, { version: "1.1", uniqueKeys: true, prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw new GlintError(`${what} is not valid YAML: ${problem.message}`);
  return doc.toJS();
}

function zodProblem(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.map(String).join(".") || "(top)"}: ${i.message}`)
    .join("; ");
}

/** Throws unless `metaData` is what Glint means to hand cloud-init. */
export function checkMetaData(
  metaData: string,
  expected: { instanceId: string; hostname: string },
): z.infer<typeof metaDataSchema> {
  const r = metaDataSchema.safeParse(parseYaml(metaData, "meta-data"));
  if (!r.success) throw new GlintError(`meta-data: ${zodProblem(r.error)}`);
  if (r.data["instance-id"] !== expected.instanceId) {
    throw new GlintError(`meta-data: instance-id is not ${expected.instanceId}`);
  }
  if (r.data["local-hostname"] !== expected.hostname) {
    throw new GlintError(`meta-data: local-hostname is not ${expected.hostname}`);
  }
  return r.data;
}

/** Throws unless `userData` is a #cloud-config that installs and runs exactly `script`. */
export function checkUserData(
  userData: string,
  expected: { hostname: string; script: string },
): CloudConfig {
  if (!userData.startsWith("#cloud-config\n")) {
    throw new GlintError('user-data: the first line must be exactly "#cloud-config"');
  }
  const r = cloudConfigSchema.safeParse(parseYaml(userData, "user-data"));
  if (!r.success) throw new GlintError(`user-data: ${zodProblem(r.error)}`);
  const cfg = r.data;
  if (cfg.hostname !== expected.hostname) {
    throw new GlintError(`user-data: hostname is not ${expected.hostname}`);
  }
  const file = cfg.write_files[0];
  if (!file || file.path !== GUEST_SCRIPT_PATH || file.permissions !== "0755") {
    throw new GlintError(`user-data: write_files must install ${GUEST_SCRIPT_PATH} with mode 0755`);
  }
  if (Buffer.from(file.content, "base64").toString("utf8") !== expected.script) {
    throw new GlintError("user-data: the embedded script is not the rendered script");
  }
  if (!cfg.runcmd.some((cmd) => cmd[0] === GUEST_SCRIPT_PATH)) {
    throw new GlintError(`user-data: runcmd does not run ${GUEST_SCRIPT_PATH}`);
  }
  return cfg;
}

/**
 * Render meta-data and user-data for `vmName` with identity `ids` and check
 * both (YAML 1.1 parse + zod schema + the values Glint expects).
 */
export function renderSeed(
  vmName: string,
  ids: SystemIdentifiers,
  options: GuestOptions = {},
): SeedFiles {
  return renderGuestFiles(vmName, ids, options).seed;
}

/**
 * The post-install script and the seed files that embed it, rendered (and
 * the identifiers validated) once, so the script on the share and the one in
 * the ISO are the same text.
 */
function renderGuestFiles(
  vmName: string,
  ids: SystemIdentifiers,
  options: GuestOptions,
): { script: string; seed: SeedFiles } {
  assertVmName(vmName);
  const hostnameFrom = checkHostnameFrom(options.hostnameFrom);
  const valid = parseIdentifiers(ids as unknown, `identifiers of ${vmName}`);
  const script = renderValidatedScript(vmName, valid, hostnameFrom);
  const hostname = hostnameFor(vmName, valid, hostnameFrom);
  const generation = String(valid.generation);
  const metaData = renderTemplate(
    loadTemplate(META_DATA_TEMPLATE),
    META_DATA_SPEC,
    { VM_UUID: valid.vm_uuid, GENERATION: generation, HOSTNAME: hostname },
    META_DATA_TEMPLATE,
  );
  const userData = renderTemplate(
    loadTemplate(USER_DATA_TEMPLATE),
    USER_DATA_SPEC,
    {
      VM_NAME: vmName,
      GENERATION: generation,
      HOSTNAME: hostname,
      SCRIPT_B64: Buffer.from(script, "utf8").toString("base64"),
    },
    USER_DATA_TEMPLATE,
  );
  checkMetaData(metaData, { instanceId: instanceIdFor(valid), hostname });
  checkUserData(userData, { hostname, script });
  return { script, seed: { metaData, userData } };
}

/**
 * Build the ISO into a new fsynced temp file next to `isoPath` and return
 * its path (the caller renames it into place or removes it).
 */
async function buildSeedIsoTemp(
  files: SeedFiles,
  isoPath: string,
  options: SeedIsoOptions = {},
): Promise<string> {
  const stage = tempPathFor(isoPath, "stage");
  const tmp = tempPathFor(isoPath);
  await fs.mkdir(stage, { mode: 0o700 });
  try {
    await fs.writeFile(path.join(stage, "meta-data"), files.metaData, { mode: 0o644 });
    await fs.writeFile(path.join(stage, "user-data"), files.userData, { mode: 0o644 });
    try {
      await runTool(
        "genisoimage",
        [
          "-quiet",
          "-input-charset",
          "utf-8",
          "-output",
          tmp,
          "-volid",
          CIDATA_LABEL,
          "-joliet",
          "-rock",
          stage,
        ],
        { env: options.env, maxBuffer: 4 * 1024 * 1024 },
      );
    } catch (error) {
      await fs.rm(tmp, { force: true });
      if (error instanceof MissingToolError) throw error;
      // runTool's cause is execFile's error; keep the last lines of stderr.
      const e = (error instanceof GlintError ? error.cause : error) as
        | (Error & { stderr?: string })
        | undefined;
      const detail = (e?.stderr ?? "").trim().split("\n").slice(-3).join(" ");
      throw new GlintError(`genisoimage failed: ${detail || e?.message || String(error)}`, {
        cause: e ?? error,
      });
    }
    await fsyncFile(tmp);
    return tmp;
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/** Build a NoCloud seed ISO (label `cidata`) at `isoPath`, atomically (temp + rename). */
export async function buildSeedIso(
  files: SeedFiles,
  isoPath: string,
  options: SeedIsoOptions = {},
): Promise<void> {
  const tmp = await buildSeedIsoTemp(files, isoPath, options);
  await renameIntoPlace(tmp, isoPath);
}

/** Render and build `<vm>/seed.iso`. */
export async function writeSeed(
  paths: VmPaths,
  ids: SystemIdentifiers,
  options: SeedOptions = {},
): Promise<string> {
  const { seed } = renderGuestFiles(paths.name, ids, options);
  await fs.mkdir(paths.dir, { recursive: true });
  await buildSeedIso(seed, paths.seedIso, options);
  return paths.seedIso;
}

/**
 * Two-phase variant for transactional regeneration: render the script and
 * build the seed ISO into temp files inside the VM directory; `commit()`
 * renames both into place, `abort()` removes them. Nothing visible changes
 * before `commit()`.
 */
export async function prepareGuestFiles(
  paths: VmPaths,
  vmName: string,
  ids: SystemIdentifiers,
  options: SeedOptions = {},
): Promise<PreparedChange> {
  assertVmName(vmName);
  if (vmName !== paths.name) {
    throw new GlintError(`prepareGuestFiles: VM name ${vmName} does not match ${paths.name}`);
  }
  const { script, seed } = renderGuestFiles(vmName, ids, options);
  const scriptTmp = await writeRenderedScriptTemp(paths, script);
  let isoTmp: string;
  try {
    isoTmp = await buildSeedIsoTemp(seed, paths.seedIso, options);
  } catch (error) {
    await fs.rm(scriptTmp, { force: true });
    throw error;
  }
  return preparedChange({
    what: "guest file update",
    async commit(markCommitted) {
      // Committed from the start: a failure below removes the temps itself,
      // so abort() has nothing left to do.
      markCommitted();
      try {
        await renameIntoPlace(scriptTmp, paths.script);
      } catch (error) {
        await fs.rm(isoTmp, { force: true });
        throw error;
      }
      try {
        await renameIntoPlace(isoTmp, paths.seedIso);
      } catch (error) {
        throw new GlintError(
          `guest files: ${paths.script} is new but ${paths.seedIso} could not be replaced`,
          { cause: error },
        );
      }
    },
    async abort() {
      await Promise.all([scriptTmp, isoTmp].map((t) => fs.rm(t, { force: true })));
    },
  });
}
