import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: { "switchboard-client": new URL("./src/index.ts", import.meta.url).pathname },
  },
  test: {
    include: ["test/**/*.test.ts"],
    // The end-to-end files start their own gateway (and browser) each, on port 0.
    testTimeout: 20_000,
    hookTimeout: 60_000,
    typecheck: { enabled: false },
  },
});
