/**
 * The MAC space of a home: its prefix (`mac_prefix` in `.glint/config.json`,
 * else QEMU's 52:54:00) leaves 8 random bits per missing octet. Before each
 * draw the registry counts the MACs issued under the prefix: above half the
 * space Glint warns, and when it is full it refuses instead of looping.
 */
import { GlintError } from "../errors.js";
import { DEFAULT_MAC_PREFIX } from "../identity/generate.js";
import { readHomeConfig } from "./config.js";
import type { Registry } from "./registry.js";

/** How many MACs a prefix leaves. */
export function macSpace(prefix: string): number {
  return 2 ** (8 * (6 - prefix.split(":").length));
}

/**
 * The home's MAC prefix (or `own`, a VM's prefix from its template), after
 * checking its space in `registry`; `notify` hears the warning above 50% use.
 */
export async function checkedMacPrefix(
  home: string,
  registry: Registry,
  notify: (message: string) => void,
  own?: string,
): Promise<string> {
  const prefix = own ?? (await readHomeConfig(home)).mac_prefix ?? DEFAULT_MAC_PREFIX;
  const space = macSpace(prefix);
  const used = await registry.countMacs(prefix);
  if (used >= space) {
    throw new GlintError(
      `the MAC prefix ${prefix} is exhausted: all ${space} of its addresses have been issued`,
      { code: "registry", details: { reason: "exhausted" } },
    );
  }
  if (used * 2 > space) {
    notify(
      `the MAC prefix ${prefix} is ${Math.floor((used / space) * 100)}% used (${used} of ${space}); consider a prefix with more random bits, e.g. 02`,
    );
  }
  return prefix;
}
