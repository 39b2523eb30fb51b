import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { policiesTableMarkdown } from "../src/identity/policies.js";
import { mappingTableMarkdown } from "../src/qemu/mapping.js";
import { sysprepMappingMarkdown } from "../src/sysprep/mapping.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

function section(name: string): string {
  const m = readme.match(
    new RegExp(`<!-- ${name}:start -->\\n([\\s\\S]*?)\\n<!-- ${name}:end -->`),
  );
  if (!m?.[1]) throw new Error(`README.md has no ${name} section`);
  return m[1];
}

describe("README quotes the code's tables (run `node scripts/sync-docs.mjs` after changing them)", () => {
  it("policies table", () => {
    expect(section("policies")).toBe(policiesTableMarkdown());
  });
  it("identifier mapping table", () => {
    expect(section("mapping")).toBe(mappingTableMarkdown());
  });
  it("sysprep mapping table", () => {
    expect(section("sysprep-mapping")).toBe(sysprepMappingMarkdown());
  });
  it("names the two newcomer commands", () => {
    expect(readme).toContain("scripts/quickstart.sh");
    expect(readme).toMatch(/^npm test\b/m);
  });
});
