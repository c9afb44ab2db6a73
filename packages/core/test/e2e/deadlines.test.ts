/**
 * Deadlines on a fake clock: `setTimeout`, `clearTimeout` and `Date` are faked, so every budget is
 * exact and a deadline passes only when the test advances the clock. Sockets, `setImmediate` and
 * I/O stay real, so frames still flow between the (real) client and server.
 */
import { Duplex } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
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
import { Metadata } from "../../src/metadata/metadata.ts";
import { encodeFrame, FrameType, PseudoKey } from "../../src/protocol/index.ts";
import { decodeStatus } from "../../src/protocol/status.ts";
import { aborted, deferred } from "../deferred.ts";
import { Echo, echoHandlers, startServer } from "../fixtures.ts";
import { type HopChain, startHops } from "../hops.ts";
import { type RawClient, type RawServer, rawConnect, startRawServer, tappedTransport } from "../raw-peer.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
const rawServers: RawServer[] = [];
const rawClients: RawClient[] = [];
const chains: HopChain[] = [];

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(async () => {
  vi.useRealTimers();
  for (const c of rawClients.splice(0)) c.socket.destroy();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(chains.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});

/** An Echo server whose `echo` reports its context and then waits for its signal to abort. */
async function waitingServer() {
  let handled = 0;
  const started = deferred<HandlerContext>();
  const abortReason = deferred<unknown>();
  const { server, address } = await startServer((s) =>
    s.register(Echo, {
      echo: async (_req, ctx) => {
        handled++;
        started.resolve(ctx);
        const reason = await aborted(ctx.signal);
        abortReason.resolve(reason);
        throw reason;
      },
      count: async function* () {},
      sum: async () => ({ total: 0, count: 0 }),
      chat: async function* () {},
      notify: () => {},
    }),
  );
  servers.push(server);
  return { address, started: started.promise, abortReason: abortReason.promise, handled: () => handled };
}

function requestFrame(streamId: number, timeout: string): Buffer {
  const body = Echo.methods.echo.input.encode({ text: "raw" }, "msgpack");
  return encodeFrame(
    FrameType.REQUEST,
    1 /* END_STREAM */,
    streamId,
    3 /* msgpack */,
    0,
    [
      [PseudoKey.path, "/test.v1.Echo/echo"],
      [PseudoKey.timeout, timeout],
    ],
    body,
  );
}

/**
 * A raw server that reads nothing until told, and a client whose socket it has filled with calls
 * (`fillers` of them, ids 1…n, pending in `filling`) until the socket asked to drain.
 */
async function fullSocket() {
  const raw = await startRawServer((socket) => socket.pause());
  rawServers.push(raw);
  const { transport, sockets } = tappedTransport({ address: raw.address, keepalive: false });
  transports.push(transport);
  const client = createClient(Echo, transport);
  const big = "x".repeat(512 * 1024);
  let fillers = 0;
  const filling: Promise<unknown>[] = [];
  while (!(sockets[0]?.writableNeedDrain ?? false) && fillers < 1000) {
    fillers++;
    filling.push(client.echo({ text: big }).catch(() => {}));
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(sockets[0]!.writableNeedDrain).toBe(true);
  return { raw, client, fillers, filling };
}

describe("deadlines over TCP", () => {
  it("fail the client with DEADLINE_EXCEEDED when its budget runs out, and cancel the call on the wire", async () => {
    const raw = await startRawServer(); // accepts, never answers
    rawServers.push(raw);
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const call = createClient(Echo, transport).echo({ text: "x" }, { timeoutMs: 250 });
    const outcome = call.catch((e: unknown) => e);
    const { log } = await raw.connection(0);
    const request = await log.next((f) => f.type === FrameType.REQUEST);
    expect(request.metadata).toContainEqual([PseudoKey.timeout, "250"]);

    vi.advanceTimersByTime(249);
    expect(await Promise.race([outcome, Promise.resolve("pending")])).toBe("pending");
    vi.advanceTimersByTime(1);
    const e = (await outcome) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(e.reason).toBe("DEADLINE_EXCEEDED");
    const cancel = await log.next((f) => f.type === FrameType.CANCEL);
    expect(cancel.streamId).toBe(request.streamId);
  });

  it("abort the handler's signal on the server at the deadline and answer DEADLINE_EXCEEDED", async () => {
    const srv = await waitingServer();
    const raw = await rawConnect(srv.address);
    rawClients.push(raw);
    raw.send(requestFrame(1, "400"));
    const ctx = await srv.started;
    expect(ctx.timeRemaining()).toBe(400);
    vi.advanceTimersByTime(399);
    expect(ctx.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    const reason = (await srv.abortReason) as WeftError;
    expect(reason.code).toBe(Code.DEADLINE_EXCEEDED);
    const end = await raw.log.next((f) => f.type === FrameType.END && f.streamId === 1);
    expect(decodeStatus(end.body, new Metadata())?.code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("end a real client's call and the server's handler together at the deadline", async () => {
    const srv = await waitingServer();
    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    const outcome = createClient(Echo, transport)
      .echo({ text: "x" }, { timeoutMs: 1000 })
      .catch((e: unknown) => e);
    const ctx = await srv.started;
    expect(ctx.deadline! - Date.now()).toBe(1000);
    vi.advanceTimersByTime(1000);
    expect(((await outcome) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(((await srv.abortReason) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("refuse a request whose budget is already spent, without running the handler", async () => {
    const srv = await waitingServer();
    const raw = await rawConnect(srv.address);
    rawClients.push(raw);
    raw.send(requestFrame(1, "0"));
    const end = await raw.log.next((f) => f.type === FrameType.END && f.streamId === 1);
    const status = decodeStatus(end.body, new Metadata());
    expect(status?.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(srv.handled()).toBe(0);
    // a bad :timeout is a client bug, not an expired deadline
    raw.send(requestFrame(3, "soon"));
    const bad = await raw.log.next((f) => f.type === FrameType.END && f.streamId === 3);
    expect(decodeStatus(bad.body, new Metadata())).toMatchObject({
      code: Code.INVALID_ARGUMENT,
      reason: "BAD_TIMEOUT",
    });
    expect(srv.handled()).toBe(0);
  });

  it("count the time a request waited behind a busy handler as spent: refused unrun, the connection fine", async () => {
    let lateRuns = 0;
    const { server, address } = await startServer((s) =>
      s.register(Echo, {
        ...echoHandlers,
        echo: (req) => {
          // holds the event loop for 200 ms of the (fake) clock, firing no timer
          if (req.text === "block") vi.setSystemTime(Date.now() + 200);
          else if (req.text === "late") lateRuns++;
          return { text: req.text };
        },
      }),
    );
    servers.push(server);
    const transport = createTcpTransport({ address });
    transports.push(transport);
    const client = createClient(Echo, transport);
    await client.echo({ text: "warm" });
    // queued in one turn, so they leave in one write and the server reads them together: the
    // handler of the first holds the event loop for 200 ms before the others are opened
    const block = client.echo({ text: "block" });
    const late = Array.from({ length: 20 }, () =>
      client.echo({ text: "late" }, { timeoutMs: 50 }).then(
        () => "answered",
        (e: unknown) => e,
      ),
    );
    expect((await block).text).toBe("block");
    // the client's own timers are fake and never advanced: only the server can end these calls
    const outcomes = await Promise.all(late);
    expect(lateRuns).toBe(0);
    for (const outcome of outcomes) {
      expect(outcome).toBeInstanceOf(WeftError);
      expect((outcome as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
      expect((outcome as WeftError).rawMessage).toBe("deadline already expired on arrival");
    }
    expect((await client.echo({ text: "fresh" }, { timeoutMs: 50 })).text).toBe("fresh");
  });

  it("handle budgets beyond the 24.8-day timer limit without firing early", async () => {
    // Node (and the fake clock) run a setTimeout longer than 2^31-1 ms after 1 ms instead
    const srv = await waitingServer();
    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    const budget = 2 ** 31 + 1000;
    const outcome = createClient(Echo, transport)
      .echo({ text: "x" }, { timeoutMs: budget })
      .catch((e: unknown) => e);
    const ctx = await srv.started;
    expect(ctx.timeRemaining()).toBe(budget);
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(ctx.signal.aborted).toBe(false);
    expect(await Promise.race([outcome, Promise.resolve("pending")])).toBe("pending");
    vi.advanceTimersByTime(1001);
    expect(((await outcome) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(((await srv.abortReason) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("treat an infinite budget as no deadline", async () => {
    const srv = await waitingServer();
    const transport = createTcpTransport({ address: srv.address });
    transports.push(transport);
    const controller = new AbortController();
    const outcome = createClient(Echo, transport)
      .echo({ text: "x" }, { timeoutMs: Number.POSITIVE_INFINITY, signal: controller.signal })
      .catch((e: unknown) => e);
    const ctx = await Promise.race([srv.started, outcome.then((e) => Promise.reject(e))]);
    expect(ctx.deadline).toBeUndefined();
    vi.advanceTimersByTime(2 ** 31);
    expect(ctx.signal.aborted).toBe(false);
    controller.abort();
    expect(((await outcome) as WeftError).code).toBe(Code.CANCELLED);
  });

  it("count the time spent connecting against the budget", async () => {
    // a peer that never completes the connection (a black-holed address)
    const transport = new TcpTransport({ address: "10.255.255.1:9", connectTimeoutMs: 60_000 }, () => {
      return new Duplex({ read() {}, write: (_chunk, _enc, done) => done() });
    });
    transports.push(transport);
    const outcome = createClient(Echo, transport)
      .echo({ text: "x" }, { timeoutMs: 300 })
      .catch((e: unknown) => e);
    vi.advanceTimersByTime(299);
    expect(await Promise.race([outcome, Promise.resolve("pending")])).toBe("pending");
    vi.advanceTimersByTime(1);
    expect(await outcome).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("do not send a call whose budget is spent before it leaves the client", async () => {
    const raw = await startRawServer();
    rawServers.push(raw);
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const e = (await createClient(Echo, transport)
      .echo({ text: "x" }, { timeoutMs: 0 })
      .catch((e: unknown) => e)) as WeftError;
    expect(e.code).toBe(Code.DEADLINE_EXCEEDED);
    // a one-way call after it is the first thing the server receives
    await createClient(Echo, transport).notify({ event: "next" });
    const { log } = await raw.connection(0);
    await log.next((f) => f.type === FrameType.REQUEST);
    expect(log.frames.map((f) => f.metadata[0])).toEqual([[PseudoKey.path, "/test.v1.Echo/notify"]]);
  });

  it("never send a call whose deadline passed while its REQUEST waited for the socket, nor its CANCEL", async () => {
    const { raw, client, fillers, filling } = await fullSocket();
    const late = client.echo({ text: "late" }, { timeoutMs: 50 }).catch((e: unknown) => e);
    const after = client.echo({ text: "after" }).catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    vi.advanceTimersByTime(50);
    expect(((await late) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    const { socket, log } = await raw.connection(0);
    socket.resume();
    // stream ids: the fillers 1…n, the late call n + 1, the one after it n + 2
    await log.next((f) => f.type === FrameType.REQUEST && f.streamId === fillers + 2);
    const requests = log.ofType(FrameType.REQUEST).map((f) => f.streamId);
    expect(requests).toEqual([...Array.from({ length: fillers }, (_, i) => i + 1), fillers + 2]);
    expect(log.ofType(FrameType.CANCEL)).toEqual([]);
    void after;
    void Promise.all(filling);
  });

  it("send a REQUEST that waited for the socket with the budget left when it goes, not when it was queued", async () => {
    const { raw, client, fillers, filling } = await fullSocket();
    // queued with 1,000 ms left; 300 ms pass before the socket takes it
    const waited = client.echo({ text: "waited" }, { timeoutMs: 1_000 }).catch(() => {});
    const later = client.echo({ text: "later" }, { timeoutMs: 1_000_000 }).catch(() => {});
    // a one-way call is in no table of calls, and is restamped all the same
    const oneway = client.notify({ event: "waited" }, { timeoutMs: 1_000 }).catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    vi.advanceTimersByTime(300);
    const { socket, log } = await raw.connection(0);
    socket.resume();
    const timeoutOf = async (streamId: number) => {
      const f = await log.next((f) => f.type === FrameType.REQUEST && f.streamId === streamId);
      return new Map(f.metadata).get(PseudoKey.timeout);
    };
    // the same number of digits, zero-padded: nothing else in the frame moved
    expect(await timeoutOf(fillers + 1)).toBe("0700");
    expect(await timeoutOf(fillers + 2)).toBe("0999700");
    expect(await timeoutOf(fillers + 3)).toBe("0700");
    void waited;
    void later;
    void oneway;
    void Promise.all(filling);
  });

  it("cancel a client-streaming call on the wire even before its REQUEST left: its frames never go out alone", async () => {
    const raw = await startRawServer();
    rawServers.push(raw);
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    const client = createClient(Echo, transport);
    async function* requests() {
      yield { n: 1 };
      yield { n: 2 };
      throw new Error("the caller gave up");
    }
    // REQUEST, both MESSAGEs and the cancel are queued before the connection's first flush
    expect(await client.sum(requests()).catch((e: unknown) => e)).toBeInstanceOf(Error);
    const next = new AbortController();
    const after = client.echo({ text: "after" }, { signal: next.signal }).catch(() => {});
    const { log } = await raw.connection(0);
    // frames arrive in order: once the next call's REQUEST is in, everything of the first one is
    await log.next((f) => f.type === FrameType.REQUEST && f.streamId === 2);
    const first = log.frames.filter((f) => f.streamId === 1).map((f) => f.type);
    expect(first[0]).toBe(FrameType.REQUEST);
    expect(first.at(-1)).toBe(FrameType.CANCEL);
    next.abort();
    await after;
  });

  it("propagate the remaining budget and the propagated headers across three hops", async () => {
    const chain = await startHops(["A", "B", "C"], {
      // each hop "works" 10 ms on the fake clock before calling the next
      onHop: () => {
        vi.advanceTimersByTime(10);
      },
      // B asks for more time than it has left: the inherited deadline still wins
      callOptions: (name) => (name === "B" ? { timeoutMs: 60_000 } : undefined),
      // A also forwards x-route; B does not
      serverOptions: (name) => (name === "A" ? { propagateHeaders: ["X-Route"] } : {}),
    });
    chains.push(chain);
    const reply = await chain.client.hop(
      {},
      {
        timeoutMs: 1000,
        headers: {
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          "weft-ctx-tenant": "acme",
          "x-route": "canary",
          "x-secret": "do-not-forward",
        },
      },
    );
    const [a, b, c] = reply.seen;
    expect(reply.seen.map((h) => h.name)).toEqual(["A", "B", "C"]);
    expect([a!.remainingMs, b!.remainingMs, c!.remainingMs]).toEqual([1000, 990, 980]);
    expect(a!.headers).toEqual({
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "weft-ctx-tenant": "acme",
      "x-route": "canary",
      "x-secret": "do-not-forward",
    });
    expect(b!.headers).toEqual({
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "weft-ctx-tenant": "acme",
      "x-route": "canary",
    });
    expect(c!.headers).toEqual({
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "weft-ctx-tenant": "acme",
    });
  });

  it("abort the last hop when the original deadline passes", async () => {
    const cStarted = deferred<HandlerContext>();
    const chain = await startHops(["A", "B", "C"], {
      onHop: async (name, ctx) => {
        if (name !== "C") return;
        cStarted.resolve(ctx);
        await aborted(ctx.signal);
      },
    });
    chains.push(chain);
    const outcome = chain.client.hop({}, { timeoutMs: 500 }).catch((e: unknown) => e);
    const c = await cStarted.promise;
    expect(c.timeRemaining()).toBe(500);
    vi.advanceTimersByTime(500);
    expect(((await outcome) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect(((await aborted(c.signal)) as WeftError).code).toBe(Code.DEADLINE_EXCEEDED);
  });
});
