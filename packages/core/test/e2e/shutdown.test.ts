/**
 * Graceful shutdown end to end over real TCP: goaway, draining of in-flight calls and streams,
 * refusal of new connections and of calls that raced the goaway (retried elsewhere), the timeout
 * that cancels what is left, and a shutdown under continuous load with zero failed calls.
 */
import { createServer as createNetServer, connect as netConnect, Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createServer,
  createTcpTransport,
  Metadata,
  type Server,
  type ServiceImpl,
  type TcpTransportOptions,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { decodeStatus, FrameType } from "../../src/protocol/index.ts";
import { aborted, deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { FrameLog } from "../raw-peer.ts";

type EchoImpl = ServiceImpl<typeof Echo>;

const defaults: EchoImpl = {
  echo: (req) => ({ text: req.text }),
  async *count() {},
  sum: async () => ({ total: 0, count: 0 }),
  async *chat() {},
  notify: () => {},
};

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

async function serve(impl: Partial<EchoImpl>) {
  const started = await startServer((s) => s.register(Echo, { ...defaults, ...impl }));
  servers.push(started.server);
  return started;
}

function connectTo(address: string | string[], options: Omit<TcpTransportOptions, "address"> = {}) {
  const transport = createTcpTransport({ address, ...options });
  transports.push(transport);
  return createClient(Echo, transport);
}

/** A few turns of the event loop: a handler that takes a little time, without a timer. */
async function hops(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/** Resolves true if a plain TCP connect to `address` is accepted, false if it is refused. */
function tcpConnects(address: string): Promise<boolean> {
  const i = address.lastIndexOf(":");
  return new Promise((resolve) => {
    const socket = netConnect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/**
 * A TCP proxy in front of `target` that logs the frames the server sends and can hold them back, so
 * a test can make the client send a call the server has already decided to refuse.
 */
async function startHoldingProxy(target: string) {
  const log = new FrameLog();
  let holding = false;
  const held: Array<() => void> = [];
  const sockets: Socket[] = [];
  const listener = createNetServer((down) => {
    const up = netConnect(hostPort(target));
    sockets.push(up, down);
    const toClient = (action: () => void) => (holding ? held.push(action) : action());
    up.on("data", (chunk: Buffer) => {
      log.push(chunk);
      toClient(() => down.write(chunk));
    });
    up.on("end", () => toClient(() => down.end()));
    down.on("data", (chunk: Buffer) => up.write(chunk));
    down.on("end", () => up.end());
    up.on("error", () => down.destroy());
    down.on("error", () => up.destroy());
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    log,
    hold(): void {
      holding = true;
    },
    release(): void {
      holding = false;
      for (const action of held.splice(0)) action();
    },
    /** Accept no new connections, as the server behind it no longer does. */
    stopAccepting(): void {
      if (listener.listening) listener.close();
    },
    close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      if (!listener.listening) return Promise.resolve();
      return new Promise((resolve) => listener.close(() => resolve()));
    },
  };
}

describe("graceful shutdown", () => {
  it("with nothing in flight resolves at once: serving → draining → stopped", async () => {
    const { server, address } = await serve({});
    const client = connectTo(address);
    await client.echo({ text: "warm" }); // an idle connection is open
    expect(server.state).toBe("serving");
    const states: string[] = [];
    server.onStateChange((state) => states.push(state));
    const t0 = performance.now();
    const done = server.shutdown({ timeoutMs: 60_000 });
    expect(server.state).toBe("draining");
    await expect(done).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
    expect(states).toEqual(["draining", "stopped"]);
    expect(performance.now() - t0).toBeLessThan(5_000); // nowhere near the 60 s timeout
    await expect(server.shutdown()).resolves.toEqual({ cancelled: 0 }); // idempotent
  });

  it("of a server that never listened resolves at once", async () => {
    const server = createServer();
    await expect(server.shutdown({ timeoutMs: 60_000 })).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
  });

  it("lets an in-flight unary call finish, refuses new connections, then stops", async () => {
    const release = deferred();
    const started = deferred();
    const { server, address } = await serve({
      async echo(req) {
        started.resolve();
        await release.promise;
        return { text: `done:${req.text}` };
      },
    });
    const client = connectTo(address);
    const inFlight = client.echo({ text: "slow" });
    await started.promise;

    const done = server.shutdown({ timeoutMs: 10_000 });
    expect(server.state).toBe("draining");
    expect(server.inFlight).toBe(1);
    // No new connections while draining, at the TCP level and for a fresh client…
    expect(await tcpConnects(address)).toBe(false);
    const fresh = await caught(connectTo(address).echo({ text: "new" }));
    expect((fresh as WeftError).code).toBe(Code.UNAVAILABLE);
    // …nor new calls from the connected client, whose only server is going away.
    const late = await caught(client.echo({ text: "late" }));
    expect((late as WeftError).code).toBe(Code.UNAVAILABLE);
    expect(server.state).toBe("draining");

    release.resolve();
    await expect(inFlight).resolves.toEqual({ text: "done:slow" });
    await expect(done).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
  });

  it("lets an open server stream flow to completion, credit and all", async () => {
    const MESSAGES = 64;
    const { server, address } = await serve({
      async *count(req) {
        // 64 × 64 KiB = 4 MiB: four windows, so the drain must keep granting credit
        for (let i = 0; i < req.n; i++) yield { i, pad: "x".repeat(64 * 1024) };
      },
    });
    const client = connectTo(address);
    const it = client.count({ n: MESSAGES })[Symbol.asyncIterator]();
    expect((await it.next()).value?.i).toBe(0);

    const done = server.shutdown({ timeoutMs: 10_000 });
    expect(server.state).toBe("draining");
    let next = 1;
    for (;;) {
      const r = await it.next();
      if (r.done === true) break;
      expect(r.value.i).toBe(next++);
    }
    expect(next).toBe(MESSAGES);
    await expect(done).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
  });

  it("past the timeout cancels what is left, says how many, and the callers see UNAVAILABLE", async () => {
    const handlerAborted = deferred<unknown>();
    const streamStarted = deferred();
    const { server, address } = await serve({
      async echo(_req, ctx) {
        void aborted(ctx.signal).then(handlerAborted.resolve);
        await new Promise(() => {}); // never finishes
        return { text: "unreachable" };
      },
      async *count(_req, ctx) {
        yield { i: 0 };
        streamStarted.resolve();
        await aborted(ctx.signal); // a stream that never ends on its own
      },
    });
    const client = connectTo(address);
    const unaryCall = caught(client.echo({ text: "forever" }));
    const streamRead = (async () => {
      const seen: number[] = [];
      try {
        for await (const m of client.count({ n: 1 })) seen.push(m.i);
      } catch (e) {
        return { seen, error: e };
      }
      return { seen, error: undefined };
    })();
    await streamStarted.promise;
    await vi.waitFor(() => expect(server.inFlight).toBe(2));

    await expect(server.shutdown({ timeoutMs: 50 })).resolves.toEqual({ cancelled: 2 });
    expect(server.state).toBe("stopped");
    const unaryError = (await unaryCall) as WeftError;
    expect(unaryError).toBeInstanceOf(WeftError);
    expect(unaryError.code).toBe(Code.UNAVAILABLE);
    expect(unaryError.reason).toBe("SHUTDOWN_TIMEOUT");
    const stream = await streamRead;
    expect(stream.seen).toEqual([0]); // what was sent before still arrives
    expect((stream.error as WeftError).code).toBe(Code.UNAVAILABLE);
    expect(((await handlerAborted.promise) as WeftError).code).toBe(Code.UNAVAILABLE);
  });

  it("reports cancelled: 1 for the one call that did not finish", async () => {
    const { server, address } = await serve({
      async echo(req, ctx) {
        if (req.text === "stuck") await aborted(ctx.signal);
        return { text: req.text };
      },
    });
    const client = connectTo(address);
    const stuck = caught(client.echo({ text: "stuck" }));
    await expect(client.echo({ text: "quick" })).resolves.toEqual({ text: "quick" });
    await vi.waitFor(() => expect(server.inFlight).toBe(1));
    await expect(server.shutdown({ timeoutMs: 20 })).resolves.toEqual({ cancelled: 1 });
    expect(((await stuck) as WeftError).code).toBe(Code.UNAVAILABLE);
  });

  it("past the timeout cancels a one-way handler too, before the server reports stopped", async () => {
    const started = deferred();
    const abortReason = deferred<unknown>();
    let stateWhenAborted: string | undefined;
    const { server, address } = await serve({
      async notify(_req, ctx) {
        started.resolve();
        abortReason.resolve(await aborted(ctx.signal));
        stateWhenAborted = server.state;
      },
    });
    const client = connectTo(address);
    await client.notify({ event: "slow" });
    await started.promise;
    expect(server.inFlight).toBe(1);
    await expect(server.shutdown({ timeoutMs: 20 })).resolves.toEqual({ cancelled: 1 });
    const reason = (await abortReason.promise) as WeftError;
    expect(reason).toBeInstanceOf(WeftError);
    expect(reason.reason).toBe("SHUTDOWN_TIMEOUT");
    expect(stateWhenAborted).toBe("draining");
    expect(server.inFlight).toBe(0);
  });

  it("waits for a one-way handler whose caller has gone: the caller was done once it sent the call", async () => {
    const started = deferred();
    const release = deferred();
    let signal: AbortSignal | undefined;
    const { server, address } = await serve({
      async notify(_req, ctx) {
        signal = ctx.signal;
        started.resolve();
        await release.promise;
      },
    });
    // the server's side of the connection, to know when it has seen the client go
    const accepted = deferred<Socket>();
    const keepalive = Socket.prototype.setKeepAlive;
    vi.spyOn(Socket.prototype, "setKeepAlive").mockImplementation(function (this: Socket, ...args) {
      accepted.resolve(this);
      return keepalive.apply(this, args);
    });
    const transport = createTcpTransport({ address });
    await createClient(Echo, transport).notify({ event: "fire-and-forget" });
    await started.promise;
    const serverSide = await accepted.promise;
    const serverSawClose = new Promise<void>((resolve) => serverSide.once("close", () => resolve()));
    await transport.close();
    await serverSawClose;
    expect(signal!.aborted).toBe(false);
    expect(server.inFlight).toBe(1);
    const done = server.shutdown({ timeoutMs: 10_000 });
    expect(server.state).toBe("draining");
    release.resolve();
    await expect(done).resolves.toEqual({ cancelled: 0 });
  });

  it("keeps a bidi stream going both ways during the drain", async () => {
    const { server, address } = await serve({
      async *chat(requests) {
        for await (const { text } of requests) yield { text: `re:${text}` };
      },
    });
    const client = connectTo(address);
    const next = { value: deferred<string | undefined>() };
    async function* requests() {
      for (;;) {
        const text = await next.value.promise;
        if (text === undefined) return;
        next.value = deferred();
        yield { text };
      }
    }
    const it = client.chat(requests())[Symbol.asyncIterator]();
    const say = async (text: string) => {
      next.value.resolve(text);
      return (await it.next()).value?.text;
    };
    expect(await say("before")).toBe("re:before");
    const done = server.shutdown({ timeoutMs: 10_000 });
    expect(await say("during")).toBe("re:during");
    expect(await say("still")).toBe("re:still");
    expect(server.state).toBe("draining");
    next.value.resolve(undefined); // half-close: the call ends, and with it the drain
    expect((await it.next()).done).toBe(true);
    await expect(done).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
  });

  it("a peer that never closes its side does not hold shutdown past its timeout", async () => {
    const { server, address } = await serve({});
    const peer = netConnect({ ...hostPort(address), allowHalfOpen: true }); // never answers our FIN
    await new Promise((resolve) => peer.once("connect", resolve));
    const gotFin = new Promise((resolve) => peer.once("end", resolve));
    peer.on("data", () => {});
    try {
      // resolves only once the server's side of every connection is closed: this one was cut off
      await expect(server.shutdown({ timeoutMs: 100 })).resolves.toEqual({ cancelled: 0 });
      expect(server.state).toBe("stopped");
      await gotFin; // after it had been asked, politely, to close
    } finally {
      peer.destroy();
    }
  });

  it("a call the client sent before it saw the goaway is refused by the server and retried elsewhere", async () => {
    const release = deferred();
    const blockerStarted = deferred();
    const served: string[] = [];
    const impl = (name: string): Partial<EchoImpl> => ({
      async echo(req) {
        served.push(`${name}:${req.text}`);
        if (req.text === "blocker") {
          blockerStarted.resolve();
          await release.promise;
        }
        return { text: `${name}:${req.text}` };
      },
    });
    const A = await serve(impl("A"));
    const B = await serve(impl("B"));
    const proxy = await startHoldingProxy(A.address);
    try {
      const client = connectTo([proxy.address, B.address]);
      const blocker = client.echo({ text: "blocker" }); // round-robin starts with A
      await blockerStarted.promise;

      proxy.hold(); // the client will not see A's goaway for now
      const done = A.server.shutdown({ timeoutMs: 10_000 });
      proxy.stopAccepting();
      const racers = ["r1", "r2", "r3", "r4"].map((text) => client.echo({ text }));
      // A refuses the racers that reached it (they arrived after its goaway)…
      const refused = await proxy.log.next(
        (f) => f.type === FrameType.END && decodeStatus(f.body, new Metadata())?.reason === "REFUSED_STREAM",
      );
      expect(refused.streamId).toBeGreaterThan(1);
      proxy.release();
      // …and the client, once it sees the goaway, sends them to B: nothing fails.
      const replies = (await Promise.all(racers)).map((r) => r.text);
      expect(replies.sort()).toEqual(["B:r1", "B:r2", "B:r3", "B:r4"]);
      expect(served.filter((s) => s.startsWith("A:"))).toEqual(["A:blocker"]);

      release.resolve();
      await expect(blocker).resolves.toEqual({ text: "A:blocker" });
      await expect(done).resolves.toEqual({ cancelled: 0 });
    } finally {
      await proxy.close();
    }
  });

  it("under continuous load from 64 concurrent callers: zero failed calls, the rest move to the other server", async () => {
    const CALLERS = 64;
    const served = { A: 0, B: 0 };
    let aFinishedWhileDraining = 0;
    const loadEstablished = deferred();
    let a: Server | undefined;
    const impl = (name: "A" | "B"): Partial<EchoImpl> => ({
      async echo(req) {
        await hops(1 + ((req.delayMs ?? 0) % 5)); // a little work, of varying length
        if (name === "A" && ++served.A === 200) {
          // shut down from inside a call on A, so that A surely has calls in flight when it begins
          loadEstablished.resolve();
          await hops(1);
        }
        if (name === "A" && a?.state === "draining") aFinishedWhileDraining++;
        if (name === "B") served.B++;
        return { text: `${name}:${req.text}` };
      },
    });
    const A = await serve(impl("A"));
    const B = await serve(impl("B"));
    a = A.server;
    const client = connectTo([A.address, B.address]);

    let ok = 0;
    const failures: unknown[] = [];
    let shutdownBegan = false;
    let aStopped = false;
    let bAfterShutdownBegan = 0;
    const callers = Array.from({ length: CALLERS }, async (_, c) => {
      // each caller goes on until A has stopped, and then makes 5 more calls
      for (let n = 0, afterStop = 0; afterStop < 5; n++) {
        const startedAfterShutdown = shutdownBegan;
        if (aStopped) afterStop++;
        try {
          const reply = await client.echo({ text: `${c}.${n}`, delayMs: c + n });
          expect(reply.text.slice(2)).toBe(`${c}.${n}`);
          ok++;
          if (startedAfterShutdown && reply.text.startsWith("B:")) bAfterShutdownBegan++;
        } catch (e) {
          failures.push(e);
          if (failures.length > 100) throw e; // something is badly wrong: stop hammering
        }
      }
    });

    await loadEstablished.promise;
    const inFlightOnA = A.server.inFlight;
    shutdownBegan = true;
    const result = await A.server.shutdown({ timeoutMs: 10_000 });
    aStopped = true;
    expect(A.server.state).toBe("stopped");
    await Promise.all(callers);

    expect(failures).toEqual([]);
    expect(result).toEqual({ cancelled: 0 });
    expect(inFlightOnA).toBeGreaterThan(0); // the drain had calls to finish…
    expect(aFinishedWhileDraining).toBeGreaterThan(0); // …and finished them on A
    expect(bAfterShutdownBegan).toBeGreaterThanOrEqual(CALLERS * 5); // new calls went to B
    expect(B.server.state).toBe("serving");
    console.log(
      `shutdown under load: ${ok} calls ok, ${failures.length} failed; ${inFlightOnA} in flight on A when shutdown began, ${aFinishedWhileDraining} handlers finished there while draining; ${bAfterShutdownBegan} served by B after it began (A served ${served.A}, B ${served.B})`,
    );
  });
});
