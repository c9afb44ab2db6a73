/**
 * kill -9 under load: three echo server processes registered in a real etcd (1 s leases), 64
 * closed-loop callers through a transport following the service with failover on the idempotent
 * echo. One process is killed with SIGKILL: no call may fail (calls in flight on it, and calls sent
 * before the client knows it is gone, fail over to the others), and its record leaves etcd within
 * its lease TTL. Once over Weft TCP, once over gRPC against the servers' `listenGrpc` endpoints.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { createClient, createTcpTransport, failover, type Transport } from "@weft/core";
import { createGrpcTransport } from "@weft/grpc";
import { createEtcdRegistry, etcdScheme } from "@weft/registry-etcd";
import { type EtcdServer, startEtcd } from "@weft/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TrafficEcho } from "./echo.ts";
import { killAll, startEchoServer, startLoad, until, windowOf } from "./fixtures.ts";

/** The registrations' TTL: etcd grants 1 s leases with the launcher's raft timings. */
const TTL_MS = 1_000;
/**
 * Slack over the TTL for the record to be gone: etcd looks for expired leases every 500 ms, the
 * test polls every 20 ms, and a shared 2-core machine may delay either by a few hundred ms.
 */
const LEAVE_SLACK_MS = 1_000;
const CALLERS = 64;

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterEach(killAll);
afterAll(() => etcd?.stop());

async function killUnderLoad(protocol: "weft" | "grpc"): Promise<void> {
  const prefix = `/weft-faults/${randomUUID()}`;
  const service = TrafficEcho.typeName;
  const ids = ["a", "b", "c"].map((name) => `${protocol}-${name}`);
  const servers = await Promise.all(
    ids.map((id) =>
      startEchoServer({
        id,
        registry: { kind: "etcd", endpoint: etcd.endpoint, prefix },
        ttlMs: TTL_MS,
        grpc: protocol === "grpc",
        latencyMs: 1,
      }),
    ),
  );
  const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix });
  const options = {
    target: `etcd://${new URL(etcd.endpoint).host}/${service}?prefix=${encodeURIComponent(prefix)}`,
    schemes: { etcd: etcdScheme },
    methods: { echo: { mode: failover() } },
  };
  const transport: Transport =
    protocol === "weft" ? createTcpTransport(options) : createGrpcTransport(options);
  const client = createClient(TrafficEcho, transport);
  const load = startLoad(CALLERS, (n) => client.echo({ n }, { timeoutMs: 5_000 }));
  try {
    await until(
      "every instance serves",
      () => ids.every((id) => load.snapshot().perInstance.has(id)),
      10_000,
    );
    await delay(1_000); // a second of steady load before the kill
    const victim = servers[0] ?? expect.fail("no server");
    const killedAt = performance.now();
    await victim.kill();
    const exitedMs = performance.now() - killedAt;
    await until(
      "the killed instance leaves etcd",
      async () => !(await registry.list(service)).some((instance) => instance.id === victim.id),
      TTL_MS + 10_000,
    );
    const leftMs = performance.now() - killedAt;
    const gone = load.snapshot();
    await delay(2_000); // two more seconds of load on the two left
    const end = await load.stop();
    const after = windowOf(gone, end);
    console.log(
      `kill -9 over ${protocol}: ${end.ok + end.failed} calls in ${(end.atMs / 1000).toFixed(1)} s, ` +
        `${end.failed} failed; killed process exited in ${exitedMs.toFixed(0)} ms, left etcd ` +
        `${leftMs.toFixed(0)} ms after the kill (TTL ${TTL_MS} ms); after it left: ${after.total} calls, ` +
        `${ids.map((id) => `${id} ${after.of(id)}`).join(", ")}`,
    );
    expect(end.failed, JSON.stringify(load.failures())).toBe(0);
    expect(leftMs).toBeLessThanOrEqual(TTL_MS + LEAVE_SLACK_MS);
    expect(after.of(victim.id)).toBe(0);
    for (const id of ids.slice(1)) expect(after.of(id)).toBeGreaterThan(0);
  } finally {
    await load.stop();
    await transport.close();
    await registry.close();
  }
}

describe("kill -9 one of three instances under load from 64 callers, failover on the idempotent echo", () => {
  it("over Weft TCP: no call fails, and the dead instance leaves etcd within its lease TTL", () =>
    killUnderLoad("weft"));

  it("over gRPC (createGrpcTransport to listenGrpc endpoints): no call fails either", () =>
    killUnderLoad("grpc"));
});
