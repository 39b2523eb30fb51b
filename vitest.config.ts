import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests spawn `node dist/cli/main.js` and child processes that kill each
    // other; a separate process per test file keeps them isolated.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Builds dist/ once (tsc), so that `npx vitest run` alone works too.
    globalSetup: ["test/global-setup.ts"],
  },
});
