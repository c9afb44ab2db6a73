/**
 * Connection failure and reconnect backoff. `Date` is faked (the backoff schedule reads
 * `Date.now()`), so the test decides when a backoff has run out; sockets and timers stay real.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createServer,
  createTcpTransport,
  type Server,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { Echo } from "../fixtures.ts";
import { closedPort, tappedTransport } from "../raw-peer.ts";

const transports: Transport[] = [];
const servers: Server[] = [];
const listeners: NetServer[] = [];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(listeners.splice(0).map((l) => new Promise<void>((r) => l.close(() => r()))));
});

function echoServer(): Server {
  const server = createServer({ onError: () => {} });
  server.register(Echo, {
    echo: (req) => ({ text: req.text }),
    count: async function* () {},
    sum: async () => ({ total: 0, count: 0 }),
    chat: async function* () {},
    notify: () => {},
  });
  servers.push(server);
  return server;
}

/**
 * Serves `server` on `port` through our own listener, counting the connections it accepts. `crash`
 * closes the listener and resets every accepted connection, as a dying process would.
 */
async function serveOn(
  server: Server,
  port: number,
): Promise<{ accepted: () => number; crash: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const listener = createNetServer((socket) => {
    sockets.push(socket);
    server.accept(socket);
  });
  listeners.push(listener);
  await new Promise<void>((resolve) => listener.listen(port, "127.0.0.1", resolve));
  return {
    accepted: () => sockets.length,
    crash: async () => {
      listeners.splice(listeners.indexOf(listener), 1);
      const closed = new Promise<void>((r) => listener.close(() => r()));
      for (const s of sockets) s.resetAndDestroy();
      await closed;
    },
  };
}

async function failure(p: Promise<unknown>): Promise<WeftError> {
  const e = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(WeftError);
  return e as WeftError;
}

/** The error came from a real connection attempt (the OS refused it), not from backoff. */
const refusedByOs = (e: WeftError) => (e.cause as { code?: string } | undefined)?.code === "ECONNREFUSED";

describe("connecting over TCP", () => {
  it("fails promptly with UNAVAILABLE/CONNECTION_FAILED when nothing listens", async () => {
    const port = await closedPort();
    const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
    transports.push(transport);
    const t0 = performance.now();
    const e = await failure(createClient(Echo, transport).echo({ text: "x" }));
    expect(performance.now() - t0).toBeLessThan(1000); // the connect timeout is 5 s
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.reason).toBe("CONNECTION_FAILED");
    expect(refusedByOs(e)).toBe(true);
  });

  it("fails fast while backing off, then reconnects once the backoff has passed", async () => {
    const port = await closedPort();
    const transport = createTcpTransport({
      address: `127.0.0.1:${port}`,
      reconnect: { initialDelayMs: 1000, maxDelayMs: 10_000 },
    });
    transports.push(transport);
    const client = createClient(Echo, transport);

    // 1st attempt: refused; backoff ≈ 1 s (±20 % jitter)
    expect(refusedByOs(await failure(client.echo({ text: "1" })))).toBe(true);
    // the server comes up, but the transport is backing off: it does not even try
    const served = await serveOn(echoServer(), port);
    const fast = await failure(client.echo({ text: "2" }));
    expect(fast).toMatchObject({ code: Code.UNAVAILABLE, reason: "CONNECTION_FAILED" });
    expect(refusedByOs(fast)).toBe(false);
    expect(served.accepted()).toBe(0);

    vi.advanceTimersByTime(799);
    expect(refusedByOs(await failure(client.echo({ text: "3" })))).toBe(false);
    expect(served.accepted()).toBe(0);

    vi.advanceTimersByTime(401); // past the longest jittered delay
    await expect(client.echo({ text: "4" })).resolves.toEqual({ text: "4" });
    expect(served.accepted()).toBe(1);
    await expect(client.echo({ text: "5" })).resolves.toEqual({ text: "5" });
    expect(served.accepted()).toBe(1);
  });

  it("backs off exponentially after repeated failures", async () => {
    const port = await closedPort();
    const transport = createTcpTransport({
      address: `127.0.0.1:${port}`,
      reconnect: { initialDelayMs: 1000, maxDelayMs: 10_000 },
    });
    transports.push(transport);
    const client = createClient(Echo, transport);

    expect(refusedByOs(await failure(client.echo({ text: "1" })))).toBe(true); // backoff 0.8–1.2 s
    vi.advanceTimersByTime(1200);
    expect(refusedByOs(await failure(client.echo({ text: "2" })))).toBe(true); // backoff 1.6–2.4 s
    vi.advanceTimersByTime(1500);
    expect(refusedByOs(await failure(client.echo({ text: "3" })))).toBe(false); // still backing off
    vi.advanceTimersByTime(900);
    const served = await serveOn(echoServer(), port);
    await expect(client.echo({ text: "4" })).resolves.toEqual({ text: "4" });
    expect(served.accepted()).toBe(1);
  });

  it("caps the backoff at maxDelayMs", async () => {
    const port = await closedPort();
    const transport = createTcpTransport({
      address: `127.0.0.1:${port}`,
      reconnect: { initialDelayMs: 1000, maxDelayMs: 1000 },
    });
    transports.push(transport);
    const client = createClient(Echo, transport);
    for (let i = 0; i < 4; i++) {
      expect(refusedByOs(await failure(client.echo({ text: `${i}` })))).toBe(true);
      vi.advanceTimersByTime(1200);
    }
  });

  it("reconnects to a server that crashed and came back on the same port", async () => {
    const port = await closedPort();
    const crashed = await serveOn(echoServer(), port);
    const { transport, sockets } = tappedTransport({
      address: `127.0.0.1:${port}`,
      reconnect: { initialDelayMs: 1000, maxDelayMs: 10_000 },
    });
    transports.push(transport);
    const client = createClient(Echo, transport);
    await expect(client.echo({ text: "before" })).resolves.toEqual({ text: "before" });

    // crash: the listener goes and the connection is reset
    const clientClosed = new Promise<void>((r) => sockets[0]!.once("close", () => r()));
    await crashed.crash();
    await clientClosed;

    // a lost connection is not a failed connect: the next call tries at once, and is refused
    expect(refusedByOs(await failure(client.echo({ text: "down" })))).toBe(true);
    const restarted = await serveOn(echoServer(), port);
    expect(refusedByOs(await failure(client.echo({ text: "backing off" })))).toBe(false);
    vi.advanceTimersByTime(1200);
    await expect(client.echo({ text: "after" })).resolves.toEqual({ text: "after" });
    expect(restarted.accepted()).toBe(1);
  });
});
