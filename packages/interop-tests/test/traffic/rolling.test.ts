/**
 * A rolling restart under load: three echo server processes in a real etcd, 64 closed-loop callers
 * through a Weft TCP transport following the service, with no cluster mode (no failover): each
 * process in turn shuts down gracefully (SIGTERM: deregister, wait, drain) and a new process takes
 * its place. Graceful shutdown alone must lose no call.
 */
import { setTimeout as delay } from "node:timers/promises";
import { createTcpTransport } from "@weft/core";
import { etcdScheme } from "@weft/registry-etcd";
import { describe, expect, it } from "vitest";
import { echoLoad, etcdService, until, useEtcd, windowOf } from "./fixtures.ts";

const CALLERS = 64;
const etcd = useEtcd();

describe("a rolling restart of three instances under load from 64 callers", () => {
  it("fails no call, without failover, and ends with traffic on the new instances only", async () => {
    const echo = etcdService(etcd().endpoint, 2_000);
    const ids = ["old-a", "old-b", "old-c"];
    const servers = await Promise.all(ids.map((id) => echo.start(id)));
    const transport = createTcpTransport({ target: echo.target, schemes: { etcd: etcdScheme } });
    const load = await echoLoad(transport, CALLERS, ids);
    const steps: string[] = [];
    const fresh: string[] = [];
    try {
      for (const [i, old] of servers.entries()) {
        const stopping = performance.now();
        await old.terminate();
        const stoppedMs = performance.now() - stopping;
        const id = `new-${i}`;
        await echo.start(id);
        const servingMs = await until(
          "the new instance serves",
          () => load.snapshot().perInstance.has(id),
          10_000,
        );
        fresh.push(id);
        steps.push(
          `${old.id} stopped in ${stoppedMs.toFixed(0)} ms, ${id} served ${servingMs.toFixed(0)} ms after registering`,
        );
      }
      const settled = load.snapshot();
      await delay(1_000);
      const end = await load.stop();
      const last = windowOf(settled, end);
      console.log(
        `rolling restart: ${end.ok + end.failed} calls in ${(end.atMs / 1000).toFixed(1)} s, ${end.failed} failed; ` +
          `${steps.join("; ")}; last second: ${[...ids, ...fresh].map((id) => `${id} ${last.of(id)}`).join(", ")}`,
      );
      expect(end.failed, JSON.stringify(load.failures())).toBe(0);
      for (const id of ids) expect(last.of(id)).toBe(0);
      for (const id of fresh) expect(last.of(id)).toBeGreaterThan(0);
    } finally {
      await load.stop();
      await transport.close();
      await echo.close();
    }
  }, 90_000);
});
