import { createMemoryRegistry } from "@weft/core";
import { registryConformance } from "./index.ts";

registryConformance(() => createMemoryRegistry(), { name: "memory registry", ttl: { ttlMs: 50 } });
