/** Terminal helpers: confirmation prompts that refuse without a TTY. */
import { UsageError } from "../errors.js";

export interface Io {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly isTTY: boolean;
  /** Where a progress bar may go: stderr, when stdout and stderr are both terminals. */
  readonly barStream?: NodeJS.WriteStream | undefined;
}

export const processIo: Io = {
  stdout: (t) => process.stdout.write(t.endsWith("\n") ? t : `${t}\n`),
  stderr: (t) => process.stderr.write(t.endsWith("\n") ? t : `${t}\n`),
  get isTTY() {
    return Boolean(process.stdin.isTTY && process.stdout.isTTY);
  },
  get barStream() {
    return process.stdout.isTTY && process.stderr.isTTY ? process.stderr : undefined;
  },
};

/**
 * Ask the user to type `expected` back. Without a TTY this refuses (exit 2)
 * and tells the user about `--yes`.
 */
export async function confirmByTyping(
  io: Io,
  question: string,
  expected: string,
  flagHint: string,
): Promise<boolean> {
  if (!io.isTTY) throw refusal(question, flagHint);
  const { input } = await import("@inquirer/prompts");
  const answer = await input({ message: `${question} Type "${expected}" to confirm:` });
  return answer.trim() === expected;
}

function refusal(question: string, flagHint: string): UsageError {
  return new UsageError(
    `refusing without confirmation: ${question.replace(/[.?]$/, "")}; there is no terminal to ask on, so pass ${flagHint} to confirm`,
  );
}

/** Yes/no confirmation; refuses without a TTY. */
export async function confirmYesNo(io: Io, question: string, flagHint: string): Promise<boolean> {
  if (!io.isTTY) throw refusal(question, flagHint);
  const { confirm } = await import("@inquirer/prompts");
  return confirm({ message: question, default: false });
}
