#!/usr/bin/env node
// Rewrites the README's generated tables (between <!-- name:start --> and
// <!-- name:end -->) from the code's single sources of truth. Run after
// `npm run build`; test/docs.test.ts fails when the README is out of date.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { policiesTableMarkdown } from "../dist/identity/policies.js";
import { mappingTableMarkdown } from "../dist/qemu/mapping.js";
import { sysprepMappingMarkdown } from "../dist/sysprep/mapping.js";

const readme = fileURLToPath(new URL("../README.md", import.meta.url));
let text = readFileSync(readme, "utf8");
for (const [name, table] of [
  ["policies", policiesTableMarkdown()],
  ["mapping", mappingTableMarkdown()],
  ["sysprep-mapping", sysprepMappingMarkdown()],
]) {
  const re = new RegExp(`(<!-- ${name}:start -->\\n)[\\s\\S]*?(<!-- ${name}:end -->)`);
  if (!re.test(text)) throw new Error(`README.md has no ${name} markers`);
  text = text.replace(re, `$1${table}\n$2`);
}
writeFileSync(readme, text);
