import { afterEach, describe, expect, it } from "vitest";
import { createClient, type Server, type Transport } from "../../src/index.ts";
import { FrameType } from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { tappedTransport } from "../raw-peer.ts";
import { seededRandom } from "../seeded-random.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

/** Deterministic shuffle (mulberry32-driven Fisher–Yates). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rand = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe("multiplexing over TCP", () => {
  it("carries 500 concurrent unary calls on one connection, answered out of order", async () => {
    const N = 500;
    const waiting: Array<{ text: string; answer: () => void }> = [];
    const allArrived = deferred();
    const peers = new Set<string | undefined>();
    const { server, address } = await startServer((s) =>
      s.register(Echo, {
        echo: async (req, ctx) => {
          peers.add(ctx.peer);
          const go = deferred();
          waiting.push({ text: req.text, answer: () => go.resolve() });
          if (waiting.length === N) allArrived.resolve();
          await go.promise;
          return { text: `re:${req.text}` };
        },
        count: async function* () {},
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: () => {},
      }),
    );
    servers.push(server);
    const { transport, logs } = tappedTransport({ address, poolSize: 1 });
    transports.push(transport);
    const client = createClient(Echo, transport);

    const texts = Array.from({ length: N }, (_, i) => `call-${i}`);
    const calls = texts.map((text) => client.echo({ text }));
    await allArrived.promise;
    expect(server.inFlight).toBe(N);
    // every call is in the handler at once; answer them in a scrambled order
    const order = shuffled(waiting, 42);
    for (const w of order) w.answer();
    const replies = await Promise.all(calls);

    expect(replies.map((r) => r.text)).toEqual(texts.map((t) => `re:${t}`));
    expect(logs).toHaveLength(1);
    expect(peers.size).toBe(1);
    // the responses really did come back in the scrambled order, not the request order
    const onWire = logs[0]!
      .ofType(FrameType.RESPONSE)
      .map((f) => Echo.methods.echo.output.decode(f.body, "msgpack").text);
    expect(onWire).toEqual(order.map((w) => `re:${w.text}`));
    expect(onWire).not.toEqual(texts.map((t) => `re:${t}`));
  });

  it("interleaves streams and unary calls on one connection", async () => {
    const { server, address } = await startServer((s) =>
      s.register(Echo, {
        echo: (req) => ({ text: req.text }),
        count: async function* (req) {
          for (let i = 0; i < req.n; i++) yield { i };
        },
        sum: async (reqs) => {
          let total = 0;
          let count = 0;
          for await (const r of reqs) {
            total += r.n;
            count++;
          }
          return { total, count };
        },
        chat: async function* (reqs) {
          for await (const r of reqs) yield { text: `<${r.text}>` };
        },
        notify: () => {},
      }),
    );
    servers.push(server);
    const { transport, logs } = tappedTransport({ address, poolSize: 1 });
    transports.push(transport);
    const client = createClient(Echo, transport);
    const collect = async <T>(it: AsyncIterable<T>) => {
      const out: T[] = [];
      for await (const m of it) out.push(m);
      return out;
    };
    async function* nums(n: number) {
      for (let i = 1; i <= n; i++) yield { n: i };
    }
    async function* words(ws: string[]) {
      for (const text of ws) yield { text };
    }
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, k) =>
        Promise.all([
          client.echo({ text: `u${k}` }),
          collect(client.count({ n: k })),
          client.sum(nums(k)),
          collect(client.chat(words([`a${k}`, `b${k}`]))),
        ]),
      ),
    );
    results.forEach(([unary, counted, summed, chatted], k) => {
      expect(unary).toEqual({ text: `u${k}` });
      expect(counted).toEqual(Array.from({ length: k }, (_, i) => ({ i })));
      expect(summed).toEqual({ total: (k * (k + 1)) / 2, count: k });
      expect(chatted).toEqual([{ text: `<a${k}>` }, { text: `<b${k}>` }]);
    });
    expect(logs).toHaveLength(1);
  });
});
