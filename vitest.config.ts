import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The real-Debian scenarios (test/e2e/debian-*.test.ts) run first: each
 * builds its guest image once (cached) and boots several guests under TCG,
 * so they are the longest files by far and the rest of the suite runs beside
 * them.
 */
class DebianFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const debian = (f: TestSpecification) =>
      /\/test\/e2e\/debian-[^/]*\.test\.ts$/.test(f.moduleId);
    return [...sorted.filter(debian), ...sorted.filter((f) => !debian(f))];
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    sequence: { sequencer: DebianFirst },
    // Tests spawn `node dist/cli/main.js` and child processes that kill each
    // other; a separate process per test file keeps them isolated. Two at a
    // time on the 2-core machines (vitest's default would be one).
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Builds dist/ once (tsc), so that `npx vitest run` alone works too.
    globalSetup: ["test/global-setup.ts"],
  },
});
