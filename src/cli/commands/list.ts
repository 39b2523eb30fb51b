/** `glint list`: one line per VM; an unreadable VM gets a line saying why. */
import type { Command } from "commander";
import type { UuidManager } from "../../manager.js";
import { summaryIn } from "../../ops/listing.js";
import { type CliEnv, type CommonOptions, common } from "../common.js";
import { formatTable } from "../format.js";
import type { Io } from "../io.js";

export function addListCommand(program: Command, { io, manager }: CliEnv): void {
  common(program.command("list"))
    .description("list VMs, one line each")
    .action(async (opts: CommonOptions) => {
      const m = manager(opts.home);
      if (opts.json) {
        await writeJsonList(io, m);
        return;
      }
      const listings = await m.listing();
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
 * written in chunks as the VMs come (nothing is held for the whole home);
 * each indexed VM's stored JSON text is spliced in as it is, unparsed.
 */
async function writeJsonList(io: Io, m: UuidManager): Promise<void> {
  const CHUNK = 1 << 20;
  // Every chunk ends with a newline: an element is written once the next
  // one (or the end) says what follows it.
  let buf = "[\n";
  let prev: string | undefined;
  await m.eachListing((l) => {
    const head = `{"name":${JSON.stringify(l.vm)},"ok":${l.json !== undefined},"state":${JSON.stringify(l.state)}`;
    const body =
      l.json !== undefined && l.json.length > 2
        ? `,${l.json.slice(1)}`
        : l.json !== undefined
          ? "}"
          : `,"error":${JSON.stringify(l.error ?? "")}}`;
    if (prev !== undefined) buf += `${prev},\n`;
    prev = `  ${head}${body}`;
    if (buf.length >= CHUNK) {
      io.stdout(buf);
      buf = "";
    }
  });
  io.stdout(prev === undefined ? "[]" : `${buf}${prev}\n]`);
}
