/**
 * Offline re-identification: builds the reference image (src/bench/disk-image.ts:
 * GPT with ESP, swap, ext4 root with metadata_csum, three SSH host keys, …) and
 * times sysprepImage on a raw copy and on a qcow2 overlay of it. When
 * virt-sysprep (libguestfs-tools) is installed, it also times
 *   virt-sysprep --operations machine-id,ssh-hostkeys,net-hwaddr,udev-persistent-net,dhcp-client-state,fs-uuids
 * on a raw copy of the same image and prints the ratio. libguestfs boots an
 * appliance; here it is forced to TCG (KVM does not work on this host).
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { sysprepImage } from "../sysprep/index.js";
import { generateOpenSshKey } from "../sysprep/openssh-keys.js";
import { diskImage } from "./disk-image.js";
import { type Benchmark, type BenchResult, type Figure, timed, withTempDir } from "./harness.js";

const run = promisify(execFile);

const IDENTITY = {
  disk_uuid: "0c4f6d8e-2a1b-4c3d-9e8f-7a6b5c4d3e2f",
  partition_uuid: "1d5e7f90-3b2c-4d4e-8f90-8b7c6d5e4f30",
  filesystem_uuid: "2e6f8091-4c3d-4e5f-9a01-9c8d7e6f5041",
  boot_uuid: "3f7091a2-5d4e-4f60-8b12-ad9e8f706152",
  swap_uuid: "408192b3-6e5f-4071-9c23-beaf90817263",
  machine_id: "5192a3c47f6041829d34cfb0a1928374",
};

function stats(values: readonly number[]): { median: number; min: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  return { median, min: s[0] ?? 0, max: s[s.length - 1] ?? 0 };
}

async function virtSysprepAvailable(): Promise<boolean> {
  return run("virt-sysprep", ["--version"]).then(
    () => true,
    () => false,
  );
}

export const sysprepBenchmark: Benchmark = {
  name: "sysprep",
  description:
    "offline re-identification of the reference image: raw copy, qcow2 overlay, virt-sysprep",
  async run(options): Promise<BenchResult> {
    const runs = options.count ?? 10;
    options.log?.("building (or reusing) the reference image");
    const img = await diskImage({ table: "gpt" });
    return withTempDir("glint-bench-sysprep-", async (dir) => {
      const figures: Figure[] = [];
      const medians: Record<string, number> = {};
      for (const kind of ["raw copy", "qcow2 overlay"] as const) {
        options.log?.(`sysprep on a ${kind}, ${runs} runs`);
        const times: number[] = [];
        for (let i = 0; i < runs; i++) {
          const file = path.join(dir, `vm-${i}.${kind === "raw copy" ? "raw" : "qcow2"}`);
          if (kind === "raw copy") await run("cp", ["--sparse=always", img.raw, file]);
          else
            await run("qemu-img", [
              "create",
              "-q",
              "-f",
              "qcow2",
              "-F",
              "qcow2",
              "-b",
              img.qcow2,
              file,
            ]);
          const { ms, value } = await timed(() =>
            sysprepImage(file, { vmName: `bench-${i}`, identifiers: IDENTITY }),
          );
          if (value.status !== "applied") throw new Error(`sysprep ${kind}: ${value.status}`);
          times.push(ms);
        }
        const s = stats(times);
        medians[kind] = s.median;
        figures.push(
          { label: `sysprep, ${kind} (median)`, value: s.median, unit: "ms" },
          { label: `sysprep, ${kind} (min)`, value: s.min, unit: "ms" },
          { label: `sysprep, ${kind} (max)`, value: s.max, unit: "ms" },
        );
      }
      // Most of a run is the RSA-3072 host key (two 1536-bit primes): shown alone.
      const rsa: number[] = [];
      for (let i = 0; i < runs; i++)
        rsa.push((await timed(() => generateOpenSshKey("rsa", "bench"))).ms);
      figures.push({
        label: "of which: RSA-3072 host key alone (median)",
        value: stats(rsa).median,
        unit: "ms",
      });
      if (await virtSysprepAvailable()) {
        options.log?.("virt-sysprep on a raw copy (boots the libguestfs appliance, TCG)");
        const file = path.join(dir, "virt-sysprep.raw");
        await run("cp", ["--sparse=always", img.raw, file]);
        const env = {
          ...process.env,
          LIBGUESTFS_BACKEND: "direct",
          LIBGUESTFS_BACKEND_SETTINGS: "force_tcg",
        };
        const ops =
          "machine-id,ssh-hostkeys,net-hwaddr,udev-persistent-net,dhcp-client-state,fs-uuids";
        try {
          const { ms } = await timed(() =>
            run("virt-sysprep", ["-q", "-a", file, "--operations", ops], {
              env,
              maxBuffer: 16 << 20,
            }),
          );
          figures.push(
            { label: "virt-sysprep, raw copy (1 run)", value: ms, unit: "ms" },
            {
              label: "virt-sysprep / glint sysprep (raw copy)",
              value: ms / (medians["raw copy"] ?? 1),
              unit: "x",
            },
          );
        } catch (error) {
          options.log?.(`virt-sysprep failed: ${(error as Error).message.split("\n")[0]}`);
          figures.push({ label: "virt-sysprep: failed to run here (see log)", value: 0, unit: "" });
        }
      } else {
        options.log?.("virt-sysprep not installed (apt-get install libguestfs-tools): no ratio");
      }
      return { name: "sysprep", figures };
    });
  },
};
