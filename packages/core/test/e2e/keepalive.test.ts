/**
 * Keepalive runs on real time (50 ms intervals): the tests wait for events (a ping seen on the wire,
 * pongs received, the call failing), never for a fixed time.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Code, createClient, type Server, type Transport, WeftError } from "../../src/index.ts";
import { FrameType } from "../../src/protocol/index.ts";
import { Echo, startServer } from "../fixtures.ts";
import { type FrameLog, type RawServer, startRawServer, tappedTransport } from "../raw-peer.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
const rawServers: RawServer[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});

/** Resolves once `log` holds `n` frames of `type`. */
async function framesOf(log: FrameLog, type: number, n: number): Promise<void> {
  while (log.ofType(type).length < n) {
    const seen = log.ofType(type);
    await log.next((f) => f.type === type && !seen.includes(f));
  }
}

describe("keepalive over TCP", () => {
  it("detects a dead peer: an in-flight call fails with UNAVAILABLE/KEEPALIVE_TIMEOUT", async () => {
    const raw = await startRawServer(); // accepts, reads, never answers
    rawServers.push(raw);
    const { transport } = tappedTransport({
      address: raw.address,
      keepalive: { intervalMs: 50, timeoutMs: 50 },
    });
    transports.push(transport);
    const t0 = performance.now();
    const e = (await createClient(Echo, transport)
      .echo({ text: "into the void" })
      .catch((e: unknown) => e)) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.reason).toBe("KEEPALIVE_TIMEOUT");
    expect(performance.now() - t0).toBeLessThan(2000);
    const { log } = await raw.connection(0);
    expect(log.ofType(FrameType.REQUEST)).toHaveLength(1);
    expect(log.ofType(FrameType.PING).length).toBeGreaterThanOrEqual(1);
  });

  it("keeps a healthy connection: the server answers pings and later calls use the same connection", async () => {
    const peers = new Set<string | undefined>();
    const { server, address } = await startServer((s) =>
      s.register(Echo, {
        echo: (req, ctx) => {
          peers.add(ctx.peer);
          return { text: req.text };
        },
        count: async function* () {},
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: () => {},
      }),
    );
    servers.push(server);
    const { transport, logs } = tappedTransport({ address, keepalive: { intervalMs: 20, timeoutMs: 20 } });
    transports.push(transport);
    const client = createClient(Echo, transport);
    await expect(client.echo({ text: "first" })).resolves.toEqual({ text: "first" });
    // several keepalive rounds, each answered
    await framesOf(logs[0]!, FrameType.PONG, 5);
    await expect(client.echo({ text: "later" })).resolves.toEqual({ text: "later" });
    expect(logs).toHaveLength(1);
    expect(peers.size).toBe(1);
  });
});
