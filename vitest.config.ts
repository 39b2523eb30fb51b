import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The real-Debian scenarios (systemd, cloud-init, sshd; ~25 min under
    // TCG, plus ~15 min to build the images once) run with
    // `npm run test:debian`; they are not yet proven green end to end.
    exclude: [
      "**/node_modules/**",
      ...(process.env.GLINT_DEBIAN_TESTS === "1" ? [] : ["test/e2e/debian-*.test.ts"]),
    ],
    // Tests spawn `node dist/cli/main.js` and child processes that kill each
    // other; a separate process per test file keeps them isolated.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Builds dist/ once (tsc), so that `npx vitest run` alone works too.
    globalSetup: ["test/global-setup.ts"],
  },
});
