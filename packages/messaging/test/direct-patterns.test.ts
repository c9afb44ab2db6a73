import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLocalRegistry } from "@weft/core";
import { asyncPatternsConformance } from "@weft/testing";
import { afterAll } from "vitest";
import { directBroker } from "../src/index.ts";

// the test's process and the server processes find one another in one local registry
const directory = mkdtempSync(join(tmpdir(), "weft-direct-patterns-"));
const registry = createLocalRegistry({ directory, ttlMs: 3_000 });
afterAll(async () => {
  await registry.close();
  rmSync(directory, { recursive: true, force: true });
});

asyncPatternsConformance("direct", async () => directBroker({ registry }), {
  process: {
    brokerModule: fileURLToPath(new URL("./fixtures/direct-broker.ts", import.meta.url)),
    env: { WEFT_TEST_REGISTRY_DIR: directory },
  },
});
