/**
 * The shedder at a real server's door, over Weft TCP: a shed call is answered OVERLOADED without its
 * body being decoded or its handler run, and costs the server little.
 */
import {
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  type MessageCodec,
  type Metadata,
  Reason,
  type Server,
  type Transport,
  unary,
  WeftError,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import type { LoadSource } from "../../src/shed/load.ts";
import { shedder } from "../../src/shed/shedder.ts";

let decoded = 0;
const counted: MessageCodec<{ n: number }> = {
  serializers: ["json"],
  encode: (v) => new TextEncoder().encode(JSON.stringify(v)),
  decode: (b) => {
    decoded++;
    return JSON.parse(new TextDecoder().decode(b)) as { n: number };
  },
};
const Work = defineService("test.v1.Work", { run: unary(counted, counted) });

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

describe("shedder at the server door", () => {
  it("answers a shed call OVERLOADED before decoding its body or running the handler", async () => {
    // idle at first (so the two held calls are admitted however long a busy machine delays them),
    // then busy with a clock `ahead` ms in advance of the one Weft TCP stamps reads with: every call
    // looks as if it had queued that long
    const load = { u: 0, ahead: 0 };
    const source: LoadSource = { utilization: () => load.u, close() {} };
    const inner = shedder({ load: source, now: () => performance.now() + load.ahead });
    const arrivals: number[] = [];
    let late = 0;
    const shed = {
      admit: (path: string, headers: Metadata, arrivedAt: number) => {
        arrivals.push(arrivedAt);
        if (arrivedAt > performance.now()) late++;
        return inner.admit(path, headers, arrivedAt);
      },
      finished: (ms: number) => inner.finished(ms),
      stats: () => inner.stats(),
    };
    let ran = 0;
    const release: Array<() => void> = [];
    const server: Server = createServer({ admission: shed, onError: () => {} }).register(Work, {
      run: async (req) => {
        ran++;
        await new Promise<void>((r) => release.push(r));
        return req;
      },
    });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    const transport: Transport = createTcpTransport({ address: `127.0.0.1:${port}` });
    cleanup.push(
      () => transport.close(),
      () => server.shutdown({ timeoutMs: 100 }),
    );
    const client = createClient(Work, transport);

    // two calls in flight (not queued: admitted), then overload
    const held = [client.run({ n: 1 }), client.run({ n: 2 })];
    while (ran < 2) await new Promise((r) => setImmediate(r));
    load.u = 1;
    load.ahead = 10;
    arrivals.length = 0;
    const decodedBefore = decoded;
    const shedCount = 200;
    const started = process.cpuUsage();
    const results = await Promise.allSettled(
      Array.from({ length: shedCount }, (_, i) => client.run({ n: i })),
    );
    const cpuUs = process.cpuUsage(started);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const e = (r as PromiseRejectedResult).reason as WeftError;
      expect(e).toBeInstanceOf(WeftError);
      expect(e.reason).toBe(Reason.OVERLOADED);
    }
    expect(ran).toBe(2);
    expect(decoded - decodedBefore).toBe(0); // the server decoded no shed body (and the client no response)
    expect(shed.stats()).toMatchObject({ inFlight: 2, dropped: shedCount });
    // the door is told when each request was read: calls sent together share a socket read
    expect(arrivals).toHaveLength(shedCount);
    expect(late).toBe(0);
    expect(new Set(arrivals).size).toBeLessThan(shedCount / 4);
    // client and server share this process: the total is an upper bound of the server's cost
    const perCallUs = (cpuUs.user + cpuUs.system) / shedCount;
    console.log(`shed call, client + server CPU: ${perCallUs.toFixed(1)} µs`);
    expect(perCallUs).toBeLessThan(2000);

    load.u = 0;
    load.ahead = 0;
    for (const r of release) r();
    await Promise.all(held);
    expect(shed.stats().inFlight).toBe(0);
  });
});
