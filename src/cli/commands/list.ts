/** `glint list`: one line per VM; an unreadable VM gets a line saying why. */
import type { Command } from "commander";
import { summaryIn, type VmListing } from "../../ops/listing.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatTable } from "../format.js";
import type { Io } from "../io.js";

export function addListCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("list"))
    .description("list VMs, one line each")
    .action(async (opts: CommonOptions) => {
      const m = manager(opts.home);
      const listings = await m.listing();
      if (opts.json) {
        writeJsonList(io, listings);
        return;
      }
      const rows: string[][] = [];
      for (const l of listings) {
        const s = summaryIn(l);
        if (s)
          rows.push([
            l.vm,
            l.state,
            String(s.vm_uuid),
            String(s.mac_address),
            String(s.firmware),
            s.tpm ? "tpm" : "-",
            s.overlay ? "overlay" : "-",
            String(s.updated_at),
          ]);
        else rows.push([l.vm, l.state, "-", "-", "-", "-", "-", `unusable: ${l.error}`]);
      }
      if (rows.length === 0)
        io.stdout(`no VMs in ${m.home}; create one with \`glint create <vm>\``);
      else
        io.stdout(
          formatTable([
            ["NAME", "STATE", "VM UUID", "MAC", "FIRMWARE", "TPM", "OVERLAY", "UPDATED"],
            ...rows,
          ]),
        );
    });
}

/**
 * `list --json`: an array of `{name, ok, state, …}`, one element per line,
 * written in chunks; each indexed VM's stored JSON text is spliced in as it
 * is, unparsed.
 */
function writeJsonList(io: Io, listings: readonly VmListing[]): void {
  if (listings.length === 0) {
    io.stdout("[]");
    return;
  }
  const CHUNK = 2000;
  for (let i = 0; i < listings.length; i += CHUNK) {
    const part = listings.slice(i, i + CHUNK).map((l, j) => {
      const head = `{"name":${JSON.stringify(l.vm)},"ok":${l.json !== undefined},"state":${JSON.stringify(l.state)}`;
      const body =
        l.json !== undefined && l.json.length > 2
          ? `,${l.json.slice(1)}`
          : l.json !== undefined
            ? "}"
            : `,"error":${JSON.stringify(l.error ?? "")}}`;
      return `${i + j === 0 ? "[\n" : ""}  ${head}${body}`;
    });
    const last = i + CHUNK >= listings.length;
    io.stdout(`${part.join(",\n")}${last ? "\n]" : ",\n"}`);
  }
}
