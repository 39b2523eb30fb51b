/**
 * The guest's reports: `GLINT:key=value` lines that the glint-report unit
 * prints on the serial console once per boot, from `GLINT:begin=<boot id>`
 * to `GLINT:end=1`.
 */

/** One boot's report: key → value. */
export type GuestReport = Readonly<Record<string, string>>;

/** Every complete report in a serial log, in boot order. */
export function parseReports(log: string): GuestReport[] {
  const reports: GuestReport[] = [];
  let current: Record<string, string> | undefined;
  for (const raw of log.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const at = line.indexOf("GLINT:");
    if (at < 0) continue;
    const body = line.slice(at + "GLINT:".length);
    const eq = body.indexOf("=");
    if (eq < 0) continue;
    const key = body.slice(0, eq);
    const value = body.slice(eq + 1).trim();
    if (key === "begin") current = { boot_id: value };
    else if (key === "end" && current) {
      reports.push(current);
      current = undefined;
    } else if (current) current[key] = value;
  }
  return reports;
}

/** The SSH host key fingerprints of a report (`ssh_ed25519` → SHA256:…). */
export function sshFingerprints(r: GuestReport): string[] {
  return Object.entries(r)
    .filter(([k]) => k.startsWith("ssh_"))
    .map(([, v]) => v)
    .sort();
}

/** The MAC addresses of a report's network interfaces. */
export function macs(r: GuestReport): string[] {
  return Object.entries(r)
    .filter(([k]) => k.startsWith("mac_"))
    .map(([, v]) => v)
    .sort();
}
