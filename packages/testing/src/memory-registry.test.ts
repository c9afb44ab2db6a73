import { createMemoryRegistry } from "@weft/core";
import { registryConformance } from "./index.ts";

// 300 ms as for the local registry: the expiry bound (3 TTLs) must hold on a busy 2-core machine
registryConformance(() => createMemoryRegistry(), { name: "memory registry", ttl: { ttlMs: 300 } });
