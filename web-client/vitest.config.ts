import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: { "switchboard-client": new URL("./src/index.ts", import.meta.url).pathname },
  },
  test: {
    include: ["test/**/*.test.ts"],
    // The end-to-end files start their own gateway (and browser) each, on port 0.
    // Both limits are hang guards, not budgets: a debug gateway and Chromium
    // start (in the hooks) and work far slower on a small shared machine than
    // on a workstation, and a hang is reported sooner by the waits inside.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    typecheck: { enabled: false },
  },
});
