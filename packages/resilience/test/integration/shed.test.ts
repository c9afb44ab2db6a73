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
    const load = { cpu: 0 };
    const source: LoadSource = { cpu: () => load.cpu, loopDelayMs: () => 0, close() {} };
    const shed = shedder({ load: source });
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

    // two calls in flight (the empty window allows one besides the first), then overload
    const held = [client.run({ n: 1 }), client.run({ n: 2 })];
    while (ran < 2) await new Promise((r) => setImmediate(r));
    load.cpu = 1000;
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
    // client and server share this process: the total is an upper bound of the server's cost
    const perCallUs = (cpuUs.user + cpuUs.system) / shedCount;
    console.log(`shed call, client + server CPU: ${perCallUs.toFixed(1)} µs`);
    expect(perCallUs).toBeLessThan(2000);

    load.cpu = 0;
    for (const r of release) r();
    await Promise.all(held);
    expect(shed.stats().inFlight).toBe(0);
  });
});
