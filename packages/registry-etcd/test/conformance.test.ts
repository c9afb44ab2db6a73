import { randomUUID } from "node:crypto";
import { type EtcdServer, registryConformance, startEtcd } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { createEtcdRegistry } from "../src/index.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(() => etcd?.stop());

registryConformance(
  () => createEtcdRegistry({ endpoints: [etcd.endpoint], prefix: `/weft-test/${randomUUID()}` }),
  { name: "etcd registry", ttl: { ttlMs: 1_000 } },
);
