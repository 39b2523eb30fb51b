/**
 * Everything the CLI prints passes through {@link printable}: values read
 * from files (a corrupt identifiers.json, its parse error, a history file
 * name) may hold terminal escape sequences, which must never reach the
 * terminal raw.
 */
import type { Io } from "./io.js";

/**
 * C0 controls except tab and newline, DEL, C1 controls (a lone U+009B is a
 * CSI on some terminals), and the invisible bidirectional overrides and
 * line/paragraph separators that can make printed text lie.
 */
const UNPRINTABLE_RE = charClass(
  [0x00, 0x08],
  [0x0b, 0x1f],
  [0x7f, 0x9f],
  [0x61c, 0x61c],
  [0x200e, 0x200f],
  [0x2028, 0x2029],
  [0x202a, 0x202e],
  [0x2066, 0x2069],
);

/** Any character but tab, newline and printable ASCII. */
const NOT_PLAIN_RE = /[^\t\n\x20-\x7e]/;

/** A global regular expression matching one character of any of the code point `ranges`. */
export function charClass(...ranges: [number, number][]): RegExp {
  const u = (n: number) => `\\u${n.toString(16).padStart(4, "0")}`;
  return new RegExp(`[${ranges.map(([a, b]) => `${u(a)}-${u(b)}`).join("")}]`, "g");
}

/**
 * `text` with every unprintable character written as a `\uXXXX` escape.
 * The escape is JSON's own, so a JSON text stays valid JSON and parses to the
 * same value (these characters can only occur inside its strings).
 */
export function printable(text: string): string {
  // Most text is printable ASCII: one quick scan says so (a large list --json).
  if (!NOT_PLAIN_RE.test(text)) return text;
  return text.replace(
    UNPRINTABLE_RE,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}

/** `io` with both streams passed through {@link printable}. */
export function printableIo(io: Io): Io {
  return {
    stdout: (text) => io.stdout(printable(text)),
    stderr: (text) => io.stderr(printable(text)),
    get isTTY() {
      return io.isTTY;
    },
    get barStream() {
      return io.barStream;
    },
  };
}
