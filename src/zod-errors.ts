/**
 * The one formatter for zod validation errors: the first few problems, each
 * naming its field and, where the data is at hand, the value it got.
 */
import type { z } from "zod";

function describeIssue(issue: z.core.$ZodIssue, data: unknown): string {
  const field = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    return `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  }
  if (!field) return issue.message;
  let got = "";
  if (data && typeof data === "object" && issue.path.length === 1 && field in data) {
    const v = (data as Record<string, unknown>)[field];
    if (v === undefined) got = "";
    else if (typeof v === "string")
      got = ` (got ${v.length} characters: ${JSON.stringify(v.length > 48 ? `${v.slice(0, 48)}…` : v)})`;
    else got = ` (got ${JSON.stringify(v)})`;
  } else if (issue.code === "invalid_type" && issue.input === undefined) {
    return `field "${field}" is missing`;
  }
  return `field "${field}" ${issue.message}${got}`;
}

/** Why `data` does not match its schema, in one line (the first three problems). */
export function describeZodError(error: z.ZodError, data?: unknown): string {
  return error.issues
    .slice(0, 3)
    .map((i) => describeIssue(i, data))
    .join("; ");
}
