/** `glint create VM`: fresh identifiers, and optionally disks, UEFI NVRAM and TPM. */
import { type Command, Option } from "commander";
import type { DiskAndFirmwareOptions } from "../../ops/provision.js";
import { CLOUD_PROFILES, FIRMWARE_KINDS, HOSTNAME_SOURCES, NET_MODES } from "../../vm/config.js";
import {
  type BulkCreateOptions,
  bulkCreate,
  expandNames,
  parseNonNegative,
} from "../bulk-create.js";
import {
  type CliEnv,
  type CommonOptions,
  common,
  definedOnly,
  parseInteger,
  printResult,
  progress,
} from "../common.js";

/** `glint create`'s options: the manager's, with `--memory` for memoryMb and `--force`. */
type CreateCliOptions = Omit<DiskAndFirmwareOptions, "memoryMb"> & {
  force?: boolean;
  memory?: number;
};

export function addCreateCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("create"))
    .description("create a VM: fresh identifiers, and optionally its disks, UEFI NVRAM and TPM")
    .argument(
      "<vm...>",
      "VM names (each becomes the hostname), or one pattern with {n} and --count",
    )
    .option(
      "--count <n>",
      "create N VMs from the pattern NAME ({n}: the number, zero-padded)",
      parseInteger,
    )
    .option("--start <k>", "first number for --count (default 1)", parseNonNegative)
    .option(
      "--jobs <n>",
      "several VMs: create N at a time (default: 1; new VMs without disk or firmware options are batched)",
      parseInteger,
    )
    .option("--force", "replace existing identifiers (the old ones are kept in history/)")
    .option("--base <img>", "base image (qcow2) to copy into the VM as base.qcow2")
    .option("--link-base", "symlink base.qcow2 to the shared --base image instead of copying it")
    .option(
      "--flatten-base",
      "accept a --base with a backing file by copying it flattened (qemu-img convert)",
    )
    .option("--overlay", "create overlay.qcow2 on top of base.qcow2 (needs --base)")
    .option("--disk-size <size>", "blank base.qcow2 of this size when there is no base, e.g. 8G")
    .addOption(new Option("--firmware <kind>", "firmware").choices(FIRMWARE_KINDS))
    .option("--tpm", "give the VM its own TPM 2.0 (swtpm)")
    .addOption(new Option("--tpm-model <model>", "TPM device").choices(["tpm-crb", "tpm-tis"]))
    .addOption(new Option("--net <mode>", "network backend").choices(NET_MODES))
    .option("--net-ifname <name>", "bridge (--net bridge) or tap interface (--net tap)")
    .option("--memory <mib>", "guest memory in MiB", parseInteger)
    .option("--cpus <n>", "virtual CPUs", parseInteger)
    .option(
      "--nics <n>",
      "NICs on the --net backend (1 to 16), each with its own unique MAC",
      parseInteger,
    )
    .addOption(
      new Option(
        "--hostname-from <source>",
        "guest hostname: the VM name or glint-<machine-id>",
      ).choices(HOSTNAME_SOURCES),
    )
    .option(
      "--template <name>",
      "identity template (see `glint template list`); options given here win over it",
    )
    .addOption(
      new Option(
        "--cloud <profile>",
        "cloud-init datasource: a NoCloud seed, or an OpenStack config drive with Nova's SMBIOS",
      ).choices(CLOUD_PROFILES),
    )
    .option(
      "--no-sysprep",
      "never write the identity into the VM's disk offline; the guest script and cloud-init apply it at boot",
    )
    .action(async (names: string[], opts: CommonOptions & CreateCliOptions & BulkCreateOptions) => {
      const m = manager(opts.home);
      const vms = expandNames(names, opts);
      const bulk = vms.length > 1 || opts.count !== undefined;
      const options = {
        forceRegenerate: Boolean(opts.force),
        ...definedOnly({
          base: opts.base,
          linkBase: opts.linkBase,
          flattenBase: opts.flattenBase,
          overlay: opts.overlay,
          diskSize: opts.diskSize,
          firmware: opts.firmware,
          tpm: opts.tpm,
          tpmModel: opts.tpmModel,
          net: opts.net,
          netIfname: opts.netIfname,
          memoryMb: opts.memory,
          cpus: opts.cpus,
          nics: opts.nics,
          hostnameFrom: opts.hostnameFrom,
          // commander sets `sysprep: true` unless --no-sysprep is given.
          sysprep: opts.sysprep === false ? false : undefined,
          template: opts.template,
          cloud: opts.cloud,
        }),
      };
      if (!bulk) {
        const result = await m.createVm(vms[0] ?? "", {
          ...options,
          onProgress: progress(io, opts.json),
        });
        printResult(io, result, opts.json);
        return;
      }
      for (const vm of vms) m.paths(vm); // every name is checked before anything is made
      await bulkCreate(io, m, vms, options, opts);
    });
}
