/**
 * kill -9 under load: three echo server processes registered in a real etcd (1 s leases), 64
 * closed-loop callers through a transport following the service with failover on the idempotent
 * echo. One process is killed with SIGKILL: no call may fail (calls in flight on it, and calls sent
 * before the client knows it is gone, fail over to the others), and its record leaves etcd within
 * its lease TTL. Once over Weft TCP, once over gRPC against the servers' `listenGrpc` endpoints.
 */
import { setTimeout as delay } from "node:timers/promises";
import { createTcpTransport, failover, type Transport } from "@weft/core";
import { createGrpcTransport } from "@weft/grpc";
import { etcdScheme } from "@weft/registry-etcd";
import { describe, expect, it } from "vitest";
import { echoLoad, etcdService, until, useEtcd, windowOf } from "./fixtures.ts";

/** The registrations' TTL: etcd grants 1 s leases with the launcher's raft timings. */
const TTL_MS = 1_000;
/**
 * Slack over the TTL for the record to be gone: etcd looks for expired leases every 500 ms, the
 * test polls every 20 ms, and a shared 2-core machine may delay either by a few hundred ms.
 */
const LEAVE_SLACK_MS = 1_000;
const CALLERS = 64;

const etcd = useEtcd();

async function killUnderLoad(protocol: "weft" | "grpc"): Promise<void> {
  const echo = etcdService(etcd().endpoint, TTL_MS);
  const ids = ["a", "b", "c"].map((name) => `${protocol}-${name}`);
  const servers = await Promise.all(ids.map((id) => echo.start(id, { grpc: protocol === "grpc" })));
  const options = {
    target: echo.target,
    schemes: { etcd: etcdScheme },
    methods: { echo: { mode: failover() } },
  };
  const transport: Transport =
    protocol === "weft" ? createTcpTransport(options) : createGrpcTransport(options);
  const load = await echoLoad(transport, CALLERS, ids);
  try {
    await delay(1_000); // a second of steady load before the kill
    const victim = servers[0] ?? expect.fail("no server");
    const killedAt = performance.now();
    await victim.kill();
    const exitedMs = performance.now() - killedAt;
    await until(
      "the killed instance leaves etcd",
      async () => !(await echo.lists(victim.id)),
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
    await echo.close();
  }
}

describe("kill -9 one of three instances under load from 64 callers, failover on the idempotent echo", () => {
  it("over Weft TCP: no call fails, and the dead instance leaves etcd within its lease TTL", () =>
    killUnderLoad("weft"));

  it("over gRPC (createGrpcTransport to listenGrpc endpoints): no call fails either", () =>
    killUnderLoad("grpc"));
});
