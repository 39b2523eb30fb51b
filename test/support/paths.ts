/** Where things are: the repository root, the built CLI and the JSON fixtures. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = path.join(ROOT, "dist", "cli", "main.js");
export const FIXTURES = path.join(ROOT, "test", "fixtures");

/** A JSON fixture from test/fixtures/, parsed. */
export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8")) as Record<string, unknown>;
}
