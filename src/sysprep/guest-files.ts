/**
 * The edits of files inside the guest, as pure functions on file text:
 * fstab parsing, rewriting references to old identifiers, hostname and
 * /etc/hosts, MAC lines of NetworkManager keyfiles and /etc/network/interfaces.
 */

export interface FstabEntry {
  readonly spec: string;
  readonly mountpoint: string;
  readonly type: string;
}

/** The entries of an fstab (comments and blank lines skipped; octal escapes decoded). */
export function parseFstab(text: string): FstabEntry[] {
  const decodeOctal = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  const out: FstabEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(/\s+/);
    if (f.length < 3) continue;
    out.push({
      spec: decodeOctal(f[0] ?? ""),
      mountpoint: decodeOctal(f[1] ?? ""),
      type: f[2] ?? "",
    });
  }
  return out;
}

/** What an fstab/crypttab spec points at. */
export type SpecRef =
  | { readonly by: "uuid" | "partuuid" | "label" | "partlabel"; readonly value: string }
  | { readonly by: "device"; readonly value: string };

export function parseSpec(spec: string): SpecRef {
  const m = /^(UUID|PARTUUID|LABEL|PARTLABEL)=(.*)$/i.exec(spec);
  if (m) {
    const by = (m[1] ?? "").toLowerCase() as "uuid" | "partuuid" | "label" | "partlabel";
    return { by, value: (m[2] ?? "").replace(/^"(.*)"$/, "$1") };
  }
  const d = /^\/dev\/disk\/by-(uuid|partuuid|label|partlabel)\/(.+)$/.exec(spec);
  if (d) {
    return { by: d[1] as "uuid" | "partuuid" | "label" | "partlabel", value: d[2] ?? "" };
  }
  return { by: "device", value: spec };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Replace every whole-token occurrence of each old identifier (any case) with
 * its new value, in the case style of the occurrence (upper-case stays upper;
 * an occurrence without letters takes the new value as given).
 * A token is bounded by characters that cannot be part of a hex identifier.
 */
export function rewriteReferences(
  text: string,
  subs: ReadonlyMap<string, string>,
): { text: string; count: number } {
  const olds = [...subs.keys()].filter((k) => k !== "");
  if (olds.length === 0) return { text, count: 0 };
  const lower = new Map([...subs].map(([k, v]) => [k.toLowerCase(), v]));
  // Longest first, so that "abcd1234-01" wins over a shorter prefix.
  olds.sort((a, b) => b.length - a.length);
  const re = new RegExp(`(?<![0-9A-Za-z-])(${olds.map(escapeRe).join("|")})(?![0-9A-Za-z-])`, "gi");
  let count = 0;
  const out = text.replace(re, (m: string) => {
    const v = lower.get(m.toLowerCase());
    if (v === undefined) return m;
    count++;
    const hasUpper = /[A-F]/.test(m);
    const hasLower = /[a-f]/.test(m);
    if (hasUpper && !hasLower) return v.toUpperCase();
    if (hasLower && !hasUpper) return v.toLowerCase();
    return v;
  });
  return { text: out, count };
}

/** Whether `text` still holds any of `values` as a token (any case). */
export function mentionsAny(text: string, values: readonly string[]): boolean {
  return rewriteReferences(text, new Map(values.map((v) => [v, v]))).count > 0;
}

/** A valid hostname from a VM name: letters, digits and hyphens, at most 63 characters. */
export function hostnameFor(vmName: string): string {
  const h = vmName
    .replace(/[^A-Za-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/g, "");
  return h === "" ? "localhost" : h;
}

/** /etc/hosts with its 127.0.1.1 line naming `hostname` (added after 127.0.0.1 if missing). */
export function setHostsLine(text: string, hostname: string): string {
  const lines = text.split("\n");
  const line = `127.0.1.1\t${hostname}`;
  let found = false;
  const out: string[] = [];
  for (const l of lines) {
    if (/^\s*127\.0\.1\.1\s/.test(l) || /^\s*127\.0\.1\.1$/.test(l)) {
      if (!found) out.push(line);
      found = true;
    } else out.push(l);
  }
  if (!found) {
    const i = out.findIndex((l) => /^\s*127\.0\.0\.1\s/.test(l));
    out.splice(i < 0 ? 0 : i + 1, 0, line);
  }
  let s = out.join("\n");
  if (!s.endsWith("\n")) s += "\n";
  return s;
}

/** A NetworkManager keyfile without its `mac-address=` / `cloned-mac-address=` lines. */
export function stripNmMac(text: string): { text: string; count: number } {
  return dropLines(text, /^\s*(cloned-)?mac-address\s*=/);
}

/** /etc/network/interfaces without its `hwaddress` lines. */
export function stripInterfacesHwaddress(text: string): { text: string; count: number } {
  return dropLines(text, /^\s*hwaddress\s/);
}

function dropLines(text: string, re: RegExp): { text: string; count: number } {
  const lines = text.split("\n");
  const kept = lines.filter((l) => !re.test(l));
  return { text: kept.join("\n"), count: lines.length - kept.length };
}
