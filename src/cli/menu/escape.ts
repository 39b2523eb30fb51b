/**
 * Esc cancels the current prompt: every prompt gets its own AbortSignal, and
 * an Esc keypress on `keys` (process.stdin, with keypress events enabled)
 * aborts the one that is showing. The prompt then rejects with
 * `AbortPromptError`, which the menu treats like Ctrl-C: back to the menu.
 */
import type { confirm, input, select } from "@inquirer/prompts";

export interface Prompts {
  select: typeof select;
  input: typeof input;
  confirm: typeof confirm;
}

interface KeySource {
  on(event: "keypress", listener: (text: unknown, key: unknown) => void): unknown;
  off(event: "keypress", listener: (text: unknown, key: unknown) => void): unknown;
}

type Context = { signal?: AbortSignal } & Record<string, unknown>;
type AnyPrompt = (config: unknown, context?: Context) => Promise<unknown>;

/**
 * Node's keypress decoder reports a lone Esc (after its escape-code timeout)
 * as `{ name: "escape", meta: true }`.
 */
export function isEscapeKey(key: unknown): boolean {
  return typeof key === "object" && key !== null && (key as { name?: unknown }).name === "escape";
}

/** Wrap prompts so that Esc on `keys` aborts the one being shown. */
export function withEscape(prompts: Prompts, keys: KeySource): Prompts & { dispose(): void } {
  let current: AbortController | undefined;
  const onKeypress = (_text: unknown, key: unknown): void => {
    if (isEscapeKey(key)) current?.abort(new Error("Esc pressed"));
  };
  keys.on("keypress", onKeypress);

  const wrap = (prompt: AnyPrompt): AnyPrompt => {
    return async (config, context) => {
      const controller = new AbortController();
      const outer = context?.signal;
      if (outer?.aborted) controller.abort(outer.reason);
      else outer?.addEventListener("abort", () => controller.abort(outer.reason), { once: true });
      const previous = current;
      current = controller;
      try {
        return await prompt(config, { ...context, signal: controller.signal });
      } finally {
        current = previous;
      }
    };
  };

  return {
    select: wrap(prompts.select as unknown as AnyPrompt) as unknown as typeof select,
    input: wrap(prompts.input as unknown as AnyPrompt) as unknown as typeof input,
    confirm: wrap(prompts.confirm as unknown as AnyPrompt) as unknown as typeof confirm,
    dispose() {
      keys.off("keypress", onKeypress);
      current = undefined;
    },
  };
}
