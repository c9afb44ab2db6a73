/**
 * A slow node under P2C-EWMA: four echo server processes in a real etcd answering in about 1 ms,
 * 16 closed-loop callers through a Weft TCP transport with `p2cEwma()`. One node's handler slows to
 * 100 ms: within 2 s at least 90 % of its share has moved to the others (its share over the two
 * seconds after that, against its share before). Back at 1 ms, it wins traffic back: its share over
 * a one-second window reaches half of a fair share within a bound.
 */
import { setTimeout as delay } from "node:timers/promises";
import { createTcpTransport, p2cEwma } from "@weft/core";
import { etcdScheme } from "@weft/registry-etcd";
import { describe, expect, it } from "vitest";
import { echoLoad, etcdService, until, useEtcd, windowOf } from "./fixtures.ts";

const CALLERS = 16;
/** Each window the shares are measured over, in milliseconds. */
const WINDOW_MS = 2_000;
/**
 * How long the recovered node may take to get half its fair share back. P2C-EWMA force-picks a node
 * left alone for 3 s (`forcePickMs`) and its latency average forgets with τ = 600 ms, so it is back
 * within a few seconds; the rest is room for a shared machine.
 */
const RECOVERY_BOUND_MS = 10_000;

const etcd = useEtcd();

describe("P2C-EWMA over four server processes", () => {
  it("moves ≥ 90 % of a node's share away within 2 s of it slowing from 1 ms to 100 ms, and gives traffic back after it recovers", async () => {
    const echo = etcdService(etcd().endpoint, 2_000);
    const ids = ["a", "b", "c", "d"];
    const servers = await Promise.all(ids.map((id) => echo.start(id)));
    const slow = servers[0] ?? expect.fail("no server");
    const transport = createTcpTransport({
      target: echo.target,
      schemes: { etcd: etcdScheme },
      balancer: p2cEwma(),
    });
    const load = await echoLoad(transport, CALLERS, ids);
    try {
      const start = load.snapshot();
      await delay(WINDOW_MS);
      const slowedAt = load.snapshot();
      await slow.setLatency(100);
      await delay(WINDOW_MS); // the 2 s P2C-EWMA has to move the traffic
      const moved = load.snapshot();
      await delay(WINDOW_MS);
      const slowEnd = load.snapshot();
      await slow.setLatency(1);
      const recoveredAt = load.snapshot();
      let last = recoveredAt;
      let recoveredShare = 0;
      const recoveryMs = await until(
        "the recovered node gets half a fair share back",
        async () => {
          await delay(1_000);
          const now = load.snapshot();
          const window = windowOf(last, now);
          last = now;
          recoveredShare = window.of(slow.id) / Math.max(1, window.total);
          return recoveredShare >= 0.5 / ids.length;
        },
        RECOVERY_BOUND_MS,
        0,
      );
      const end = await load.stop();

      const before = windowOf(start, slowedAt);
      const after = windowOf(moved, slowEnd);
      const shareBefore = before.of(slow.id) / before.total;
      const shareAfter = after.of(slow.id) / after.total;
      const percent = (share: number) => `${(share * 100).toFixed(2)} %`;
      console.log(
        `slow node under p2cEwma: ${end.ok + end.failed} calls in ${(end.atMs / 1000).toFixed(1)} s, ` +
          `${end.failed} failed; its share before ${percent(shareBefore)} (${before.of(slow.id)}/${before.total}), ` +
          `2–4 s after slowing ${percent(shareAfter)} (${after.of(slow.id)}/${after.total}), ` +
          `back to ${percent(recoveredShare)} over 1 s, ${recoveryMs.toFixed(0)} ms after it recovered`,
      );
      expect(end.failed, JSON.stringify(load.failures())).toBe(0);
      expect(shareBefore).toBeGreaterThan(0.5 / ids.length); // it had a real share to lose
      expect(shareAfter).toBeLessThanOrEqual(shareBefore * 0.1);
    } finally {
      await load.stop();
      await transport.close();
      await echo.close();
    }
  }, 60_000);
});
