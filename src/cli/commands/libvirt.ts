/**
 * `glint libvirt export|define|sync|import`: Glint VMs as libvirt domains
 * (src/libvirt/). `export` only reads; `define`, `sync` and `import` talk to
 * a libvirt daemon through virsh (`--connect URI`).
 */
import { type Command, Option } from "commander";
import { UsageError } from "../../errors.js";
import { identifiersToDict } from "../../identity/model.js";
import {
  defineDomain,
  exportDomain,
  importDomain,
  syncDomain,
  validateDomainXml,
} from "../../libvirt/index.js";
import { writeFileAtomic } from "../../vm/atomic.js";
import { type CliEnv, common, definedOnly, progress } from "../common.js";

interface LibvirtCliOptions {
  home?: string;
  json?: boolean;
  output?: string;
  name?: string;
  type?: "auto" | "kvm" | "qemu";
  connect?: string;
  swtpmDir?: string;
  as?: string;
  validate?: boolean;
}

const typeOption = () =>
  new Option("--type <type>", "domain type: kvm, qemu (TCG) or auto (kvm when /dev/kvm opens)")
    .choices(["auto", "kvm", "qemu"])
    .default("auto");
const connectOption = () =>
  new Option(
    "--connect <uri>",
    "libvirt URI (default: the one recorded at define/import, else virsh's)",
  );
const swtpmOption = () =>
  new Option(
    "--swtpm-dir <dir>",
    "where libvirt keeps emulated TPM state (default: $GLINT_LIBVIRT_SWTPM_DIR, else /var/lib/libvirt/swtpm)",
  );

export function addLibvirtCommands(program: Command, { io, manager }: CliEnv): void {
  const libvirt = program
    .command("libvirt")
    .description("export, define, sync or import libvirt domains")
    .usage("export|define|sync|import … [options]")
    .argument("[action]")
    .allowExcessArguments()
    .action((action: string | undefined) => {
      throw new UsageError(
        `${action === undefined ? "libvirt needs an action" : `unknown libvirt action '${action}'`}: use export, define, sync or import`,
      );
    });

  common(libvirt.command("export"))
    .description("print the VM's libvirt domain XML (identity, firmware, NVRAM, TPM, NICs, disks)")
    .argument("<vm>")
    .option("-o, --output <file>", "write the XML to FILE instead of stdout")
    .option("--name <domain>", "domain name (default: the VM's name)")
    .option("--validate", "check the XML with virt-xml-validate (needs -o)")
    .addOption(typeOption())
    .action(async (vm: string, opts: LibvirtCliOptions) => {
      if (opts.validate && opts.output === undefined)
        throw new UsageError("--validate needs -o FILE");
      const { domain, xml } = await exportDomain(
        manager(opts.home),
        vm,
        definedOnly({ name: opts.name, type: opts.type }),
        process.env,
      );
      if (opts.output === undefined) {
        io.stdout(opts.json ? JSON.stringify({ vm, domain, xml }) : xml.trimEnd());
        return;
      }
      await writeFileAtomic(opts.output, xml);
      if (opts.validate) await validateDomainXml(opts.output, process.env);
      io.stdout(
        opts.json
          ? JSON.stringify({ vm, domain, file: opts.output, validated: Boolean(opts.validate) })
          : `domain "${domain}" of VM "${vm}" written to ${opts.output}${opts.validate ? " (valid)" : ""}`,
      );
    });

  common(libvirt.command("define"))
    .description("define the VM as a libvirt domain (refused if the domain exists)")
    .argument("<vm>")
    .option("--name <domain>", "domain name (default: the VM's name)")
    .addOption(typeOption())
    .addOption(connectOption())
    .addOption(swtpmOption())
    .action(async (vm: string, opts: LibvirtCliOptions) => {
      const r = await defineDomain(
        manager(opts.home),
        vm,
        definedOnly({
          name: opts.name,
          type: opts.type,
          uri: opts.connect,
          swtpmDir: opts.swtpmDir,
        }),
        process.env,
      );
      io.stdout(
        opts.json
          ? JSON.stringify(r)
          : `VM "${vm}" defined as libvirt domain "${r.domain}" (uuid ${r.uuid})${r.tpm_state ? `; TPM state in ${r.tpm_state}` : ""}`,
      );
    });

  common(libvirt.command("sync"))
    .description("write the VM's current identity into its libvirt domain (refused while it runs)")
    .argument("<vm>")
    .option("--name <domain>", "domain name (default: the one recorded at define/import)")
    .addOption(connectOption())
    .addOption(swtpmOption())
    .action(async (vm: string, opts: LibvirtCliOptions) => {
      const r = await syncDomain(
        manager(opts.home),
        vm,
        definedOnly({ name: opts.name, uri: opts.connect, swtpmDir: opts.swtpmDir }),
        process.env,
      );
      const moved =
        r.previous_uuid !== null && r.previous_uuid !== r.uuid
          ? ` (uuid ${r.previous_uuid} → ${r.uuid})`
          : ` (uuid ${r.uuid})`;
      io.stdout(
        opts.json
          ? JSON.stringify(r)
          : `libvirt domain "${r.domain}" synced with VM "${vm}"${moved}; previous XML in ${r.backup}`,
      );
    });

  common(libvirt.command("import"))
    .description("adopt a libvirt domain's identity (by name, or from an XML file) into a new VM")
    .argument(
      "<domain-or-file>",
      "domain name, or a domain XML file (a path with '/' or ending in .xml)",
    )
    .option("--as <vm>", "the new VM's name (default: the domain's name)")
    .addOption(connectOption())
    .addOption(swtpmOption())
    .action(async (source: string, opts: LibvirtCliOptions) => {
      const r = await importDomain(
        manager(opts.home),
        source,
        {
          ...definedOnly({ as: opts.as, uri: opts.connect, swtpmDir: opts.swtpmDir }),
          onProgress: progress(io, opts.json),
        },
        process.env,
      );
      if (opts.json) {
        io.stdout(JSON.stringify({ ...r, identifiers: identifiersToDict(r.identifiers) }, null, 2));
      } else {
        io.stdout(`domain "${r.domain}" imported as VM "${r.vm}"`);
        io.stdout(`  adopted: ${r.adopted.join(", ") || "nothing"}`);
        io.stdout(`  drawn fresh: ${r.drawn.join(", ") || "nothing"}`);
        if (r.nics > 1) io.stdout(`  NICs: ${r.nics}`);
        if (r.tpm !== null)
          io.stdout(
            `  TPM: ${r.tpm === "adopted" ? "libvirt's state adopted" : "a fresh TPM (libvirt had none)"}`,
          );
        for (const c of r.collisions) {
          io.stderr(
            `glint: warning: ${c.field} ${c.value} of domain "${r.domain}" is held by VM ${c.vms.map((v) => `"${v}"`).join(", ")}; "${r.vm}" got a fresh one`,
          );
        }
        for (const x of r.rejected) {
          io.stderr(
            `glint: warning: ${x.field} ${JSON.stringify(x.value)} of domain "${r.domain}" ${x.why}; drawn fresh`,
          );
        }
      }
    });
}
