import { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  type HandlerContext,
  type Server,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { TcpTransport } from "../../src/internal.ts";
import { FrameType } from "../../src/protocol/index.ts";
import { aborted, deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { type HopChain, startHops } from "../hops.ts";
import { type RawServer, startRawServer } from "../raw-peer.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
const rawServers: RawServer[] = [];
const chains: HopChain[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(chains.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});

/** An Echo server whose `echo` and `count` report their context, then wait for their signal to abort. */
async function waitingServer() {
  const started = deferred<HandlerContext>();
  const abortReason = deferred<unknown>();
  const wait = async (ctx: HandlerContext) => {
    started.resolve(ctx);
    const reason = await aborted(ctx.signal);
    abortReason.resolve(reason);
    return reason;
  };
  const { server, address } = await startServer((s) =>
    s.register(Echo, {
      echo: async (_req, ctx) => {
        throw await wait(ctx);
      },
      count: async function* (_req, ctx) {
        yield { i: 0 };
        throw await wait(ctx);
      },
      sum: async () => ({ total: 0, count: 0 }),
      chat: async function* () {},
      notify: () => {},
    }),
  );
  servers.push(server);
  const transport = createTcpTransport({ address });
  transports.push(transport);
  return {
    client: createClient(Echo, transport),
    started: started.promise,
    abortReason: abortReason.promise,
  };
}

describe("cancellation over TCP", () => {
  it("aborting the caller's signal rejects the call with CANCELLED and aborts the handler's signal", async () => {
    const srv = await waitingServer();
    const controller = new AbortController();
    const outcome = srv.client.echo({ text: "x" }, { signal: controller.signal }).catch((e: unknown) => e);
    const ctx = await srv.started;
    expect(ctx.signal.aborted).toBe(false);
    controller.abort();
    const e = (await outcome) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.CANCELLED);
    const reason = (await srv.abortReason) as WeftError;
    expect(reason.code).toBe(Code.CANCELLED);
    expect(ctx.signal.aborted).toBe(true);
  });

  it("keeps the caller's abort reason when it is a WeftError", async () => {
    const srv = await waitingServer();
    const controller = new AbortController();
    const outcome = srv.client.echo({ text: "x" }, { signal: controller.signal }).catch((e: unknown) => e);
    await srv.started;
    controller.abort(new WeftError(Code.ABORTED, "user navigated away", { reason: "NAVIGATED" }));
    expect(await outcome).toMatchObject({ code: Code.ABORTED, reason: "NAVIGATED" });
    expect(await srv.abortReason).toMatchObject({ code: Code.CANCELLED });
  });

  it("aborting mid-stream ends the reader with CANCELLED and aborts the streaming handler", async () => {
    const srv = await waitingServer();
    const controller = new AbortController();
    const got: unknown[] = [];
    const read = (async () => {
      for await (const m of srv.client.count({ n: 10 }, { signal: controller.signal })) {
        got.push(m);
        controller.abort();
      }
    })();
    await expect(read).rejects.toMatchObject({ code: Code.CANCELLED });
    expect(got).toEqual([{ i: 0 }]);
    expect(await srv.abortReason).toMatchObject({ code: Code.CANCELLED });
  });

  it("a signal aborted before the call fails it with CANCELLED without sending it", async () => {
    const raw = await startRawServer();
    rawServers.push(raw);
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const client = createClient(Echo, transport);
    await expect(client.echo({ text: "x" }, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: Code.CANCELLED,
    });
    await client.notify({ event: "next" });
    const { log } = await raw.connection(0);
    await log.next((f) => f.type === FrameType.REQUEST);
    expect(log.frames.map((f) => f.metadata[0]?.[1])).toEqual(["/test.v1.Echo/notify"]);
  });

  it("aborting while the connection is still being established fails the call at once", async () => {
    const dialed = deferred();
    const transport = new TcpTransport({ address: "10.255.255.1:9", connectTimeoutMs: 2000 }, () => {
      dialed.resolve();
      return new Duplex({ read() {}, write: (_chunk, _enc, done) => done() });
    });
    transports.push(transport);
    const controller = new AbortController();
    const outcome = createClient(Echo, transport)
      .echo({ text: "x" }, { signal: controller.signal })
      .catch((e: unknown) => e);
    await dialed.promise;
    const t0 = performance.now();
    controller.abort();
    expect(await outcome).toMatchObject({ code: Code.CANCELLED });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("cancelling the original call cascades through A and B to C", async () => {
    const started = deferred<HandlerContext>();
    const signals = new Map<string, AbortSignal>();
    const chain = await startHops(["A", "B", "C"], {
      onHop: async (name, ctx) => {
        signals.set(name, ctx.signal);
        if (name !== "C") return;
        started.resolve(ctx);
        await aborted(ctx.signal);
      },
    });
    chains.push(chain);
    const controller = new AbortController();
    const outcome = chain.client.hop({}, { signal: controller.signal }).catch((e: unknown) => e);
    const c = await started.promise;
    expect([...signals.values()].map((s) => s.aborted)).toEqual([false, false, false]);
    controller.abort();
    expect(await outcome).toMatchObject({ code: Code.CANCELLED });
    expect(await aborted(c.signal)).toMatchObject({ code: Code.CANCELLED });
    expect([...signals.entries()].map(([n, s]) => [n, s.aborted])).toEqual([
      ["A", true],
      ["B", true],
      ["C", true],
    ]);
  });
});
