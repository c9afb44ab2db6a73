import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalRegistry } from "@weft/core";
import { afterAll } from "vitest";
import { registryConformance } from "./index.ts";

const root = mkdtempSync(join(tmpdir(), "weft-local-registry-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

registryConformance(() => createLocalRegistry({ directory: join(root, String(n++)), pollIntervalMs: 50 }), {
  name: "local registry",
  ttl: { ttlMs: 300 },
});
