/** Shell quoting for printed commands (Glint never runs a shell string). */

/** A POSIX-shell-quoted command line, for printing (never executed by Glint). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map(shellWord).join(" ");
}

/** One word for a POSIX shell: bare when only safe characters, else single-quoted. */
export function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
