/**
 * `glint template create|show|list|rm|save`: identity templates (see
 * src/templates/). `glint create VM --template NAME` uses them.
 */
import { promises as fs } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { GlintError, messageOf, UsageError } from "../../errors.js";
import type { TemplateEntry } from "../../templates/index.js";
import {
  CLOUD_PROFILES,
  FIRMWARE_KINDS,
  HOSTNAME_SOURCES,
  NET_MODES,
  SMBIOS_FIELDS,
} from "../../vm/config.js";
import { type CliEnv, type CommonOptions, common, parseInteger } from "../common.js";
import { formatTable } from "../format.js";

interface TemplateFlags {
  file?: string;
  from?: string;
  force?: boolean;
  description?: string;
  firmware?: string;
  tpm?: boolean;
  tpmModel?: string;
  memory?: number;
  cpus?: number;
  nics?: number;
  net?: string;
  base?: string;
  overlay?: boolean;
  diskSize?: string;
  hostnameFrom?: string;
  hostnamePattern?: string;
  macPrefix?: string;
  cloud?: string;
  cpuSerial?: { prefix: string; length: number };
  boardSerial?: { prefix: string; length: number };
  smbios?: Record<string, string>;
  oemString?: string[];
}

/** `PREFIX:LENGTH` (the prefix may be empty). */
function parseSerialFormat(value: string): { prefix: string; length: number } {
  const m = /^([^:]*):([0-9]{1,3})$/.exec(value);
  if (!m) throw new InvalidArgumentError("expected PREFIX:LENGTH, e.g. DT:16 or :16.");
  return { prefix: m[1] ?? "", length: Number(m[2]) };
}

function collectSmbios(value: string, previous: Record<string, string> = {}) {
  const eq = value.indexOf("=");
  if (eq <= 0) {
    throw new InvalidArgumentError(
      `expected FIELD=VALUE, FIELD one of ${Object.keys(SMBIOS_FIELDS).join(", ")}.`,
    );
  }
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The template fields the flags set (undefined ones left out). */
function flagFields(o: TemplateFlags): Record<string, unknown> {
  const serials =
    o.cpuSerial || o.boardSerial
      ? {
          serial_formats: {
            ...(o.cpuSerial ? { cpu: o.cpuSerial } : {}),
            ...(o.boardSerial ? { motherboard: o.boardSerial } : {}),
          },
        }
      : {};
  const fields: Record<string, unknown> = {
    description: o.description,
    firmware: o.firmware,
    tpm: o.tpm,
    tpm_model: o.tpmModel,
    memory_mb: o.memory,
    cpus: o.cpus,
    nics: o.nics,
    net: o.net,
    base: o.base,
    overlay: o.overlay,
    disk_size: o.diskSize,
    hostname_from: o.hostnameFrom,
    hostname_pattern: o.hostnamePattern,
    mac_prefix: o.macPrefix,
    cloud: o.cloud,
    smbios: o.smbios,
    oem_strings: o.oemString,
    ...serials,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

async function readTemplateFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = file === "-" ? await readStdin() : await fs.readFile(file, "utf8");
  } catch (error) {
    throw new GlintError(`cannot read ${file}: ${messageOf(error)}`, {
      code: "not-found",
      details: { file },
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new GlintError(`${file}: not valid JSON (${messageOf(error)})`, {
      code: "invalid-file",
      details: { file, reason: "template" },
    });
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new GlintError(`${file}: a template is a JSON object`, {
      code: "invalid-file",
      details: { file, reason: "template" },
    });
  }
  return data as Record<string, unknown>;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function entryJson(e: TemplateEntry): Record<string, unknown> {
  return { name: e.name, source: e.source, file: e.file, template: e.template };
}

export function addTemplateCommands(program: Command, { io, manager }: CliEnv): void {
  const template = program
    .command("template")
    .description("identity templates: how a VM's identity and hardware look");

  common(template.command("list"))
    .description("list the predefined templates and the home's")
    .action(async (opts: CommonOptions) => {
      const entries = await manager(opts.home).listTemplates();
      if (opts.json) {
        io.stdout(JSON.stringify(entries.map(entryJson), null, 2));
        return;
      }
      io.stdout(
        formatTable([
          ["NAME", "SOURCE", "DESCRIPTION"],
          ...entries.map((e) => [e.name, e.source, e.template.description ?? ""]),
        ]),
      );
    });

  common(template.command("show"))
    .description("print a template (JSON)")
    .argument("<name>", "template name")
    .action(async (name: string, opts: CommonOptions) => {
      const entry = await manager(opts.home).getTemplate(name);
      io.stdout(JSON.stringify(opts.json ? entryJson(entry) : entry.template, null, 2));
    });

  common(template.command("create"))
    .description(
      "create a template in <home>/.glint/templates/ from a JSON file, another template and options",
    )
    .argument("<name>", "template name")
    .option("--file <file>", "start from this JSON template ('-': stdin)")
    .option("--from <template>", "start from this template (predefined or the home's)")
    .option("--force", "replace an existing template of this name")
    .option("--description <text>", "one line shown by `glint template list`")
    .addOption(new Option("--firmware <kind>", "firmware").choices(FIRMWARE_KINDS))
    .option("--tpm", "a TPM 2.0")
    .option("--no-tpm", "no TPM")
    .addOption(new Option("--tpm-model <model>", "TPM device").choices(["tpm-crb", "tpm-tis"]))
    .option("--memory <mib>", "guest memory in MiB", parseInteger)
    .option("--cpus <n>", "virtual CPUs", parseInteger)
    .option("--nics <n>", "NICs (more than one needs --net user)", parseInteger)
    .addOption(new Option("--net <mode>", "network backend").choices(NET_MODES))
    .option("--base <img>", "base image (qcow2, absolute path; it must exist)")
    .option("--overlay", "an overlay on the base")
    .option("--disk-size <size>", "blank disk of this size when there is no base, e.g. 8G")
    .addOption(
      new Option("--hostname-from <source>", "guest hostname source").choices(HOSTNAME_SOURCES),
    )
    .option("--hostname-pattern <pattern>", "guest hostname pattern, e.g. web-{n}")
    .option("--mac-prefix <prefix>", "MAC prefix of the VMs, e.g. 02:47")
    .addOption(new Option("--cloud <profile>", "cloud profile").choices(CLOUD_PROFILES))
    .option("--cpu-serial <prefix:length>", "CPU serial format after 'CPU'", parseSerialFormat)
    .option(
      "--board-serial <prefix:length>",
      "motherboard serial format after 'MB'",
      parseSerialFormat,
    )
    .option(
      "--smbios <field=value>",
      `an SMBIOS string (repeatable): ${Object.keys(SMBIOS_FIELDS).join(", ")}`,
      collectSmbios,
    )
    .option("--oem-string <value>", "an extra SMBIOS OEM string (repeatable)", collect)
    .action(async (name: string, opts: CommonOptions & TemplateFlags) => {
      const m = manager(opts.home);
      if (opts.file !== undefined && opts.from !== undefined) {
        throw new UsageError("give --file or --from, not both");
      }
      const start: Record<string, unknown> =
        opts.from !== undefined
          ? { ...(await m.getTemplate(opts.from)).template }
          : opts.file !== undefined
            ? await readTemplateFile(opts.file)
            : { schema_version: 1 };
      const flags = flagFields(opts);
      const data = {
        ...start,
        ...flags,
        ...(flags.smbios
          ? { smbios: { ...(start.smbios as object | undefined), ...(flags.smbios as object) } }
          : {}),
        // A template copied --from a predefined one says so, unless a description is given.
        ...(opts.from !== undefined && opts.description === undefined
          ? { description: `from ${opts.from}: ${String(start.description ?? "")}`.slice(0, 200) }
          : {}),
      };
      const entry = await m.saveTemplate(name, data, { force: Boolean(opts.force) });
      io.stdout(
        opts.json ? JSON.stringify(entryJson(entry), null, 2) : `template ${name}: ${entry.file}`,
      );
    });

  common(template.command("save"))
    .description(
      "save a template that makes VMs like an existing one (its config, not its identity)",
    )
    .argument("<name>", "template name")
    .requiredOption("--from <vm>", "the VM to copy")
    .option("--description <text>", "one line shown by `glint template list`")
    .option("--force", "replace an existing template of this name")
    .action(
      async (
        name: string,
        opts: CommonOptions & { from: string; description?: string; force?: boolean },
      ) => {
        const entry = await manager(opts.home).saveTemplateFromVm(name, opts.from, {
          force: Boolean(opts.force),
          ...(opts.description === undefined ? {} : { description: opts.description }),
        });
        io.stdout(
          opts.json ? JSON.stringify(entryJson(entry), null, 2) : `template ${name}: ${entry.file}`,
        );
      },
    );

  common(template.command("rm"))
    .description("remove one of the home's templates (VMs made from it keep their config)")
    .argument("<name>", "template name")
    .action(async (name: string, opts: CommonOptions) => {
      const file = await manager(opts.home).removeTemplate(name);
      io.stdout(opts.json ? JSON.stringify({ removed: name, file }) : `removed template ${name}`);
    });
}
