import { defineConfig } from "vitest/config";

/**
 * The workspace runs the TypeScript sources of the @weft packages: their `exports` select `src/` under
 * this condition and the built `dist/` otherwise (what users of the published packages get).
 */
const sourceCondition = "@weft/source";
const nodeOptions = [process.env.NODE_OPTIONS, `--conditions=${sourceCondition}`].filter(Boolean).join(" ");

export default defineConfig({
  // tests run in Vite's server environment: the condition, then Vite's defaults for it but "module",
  // which Vitest also hands to Node (`--conditions`) and which picks builds Node cannot load
  // (OpenTelemetry's ESM, whose imports have no file extensions); Node in production never uses it
  ssr: { resolve: { conditions: [sourceCondition, "node", "development|production"] } },
  test: {
    include: [
      "packages/*/src/**/*.test.ts",
      "packages/*/test/**/*.test.ts",
      "examples/*/src/**/*.test.ts",
      "bench/src/**/*.test.ts",
    ],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Node processes started by tests (the `weft` launcher, protoc-gen-weft under buf) run the sources too.
    env: { NODE_OPTIONS: nodeOptions },
  },
});
