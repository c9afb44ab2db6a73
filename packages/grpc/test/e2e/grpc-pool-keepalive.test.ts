/** The gRPC transport's connection pool and keepalive pings, against a bare HTTP/2 peer. */
import { once } from "node:events";
import { createServer as createH2Server, type Http2Session, type ServerHttp2Stream } from "node:http2";
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Socket,
} from "node:net";
import { Code, createClient, defineService, rawBytes, unary, type WeftError } from "@weft/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createGrpcTransport } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { deferred } from "./fixtures.ts";

const Raw = defineService("test.Raw", { echo: unary(rawBytes, rawBytes) });

/** An HTTP/2 peer that holds every stream (or answers it at once, `answer`), and counts the PINGs it gets. */
async function h2Peer(answer: boolean) {
  const streams: ServerHttp2Stream[] = [];
  const sessions = new Set<Http2Session>();
  let pings = 0;
  let arrived = deferred();
  const server = createH2Server();
  server.on("session", (s: Http2Session) => {
    sessions.add(s);
    s.on("ping", () => pings++);
    s.on("error", () => {});
    s.once("close", () => sessions.delete(s));
  });
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    streams.push(stream);
    const a = arrived;
    arrived = deferred();
    a.resolve();
    if (!answer) return;
    stream.resume();
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(encodeEnvelope(new Uint8Array([7])));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    streams,
    pings: () => pings,
    /** Resolves once `n` streams have arrived. */
    async streamsArrived(n: number) {
      while (streams.length < n) await arrived.promise;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A TCP proxy that can be frozen: bytes stop in both directions and nothing closes, as when a peer vanishes. */
async function freezableProxy(port: number) {
  const pairs: Array<[Socket, Socket]> = [];
  const proxy = createNetServer((inbound) => {
    const outbound = netConnect(port, "127.0.0.1");
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.on("error", () => outbound.destroy());
    outbound.on("error", () => inbound.destroy());
    pairs.push([inbound, outbound]);
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  return {
    address: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    freeze() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      proxy.close();
    },
  };
}

describe("gRPC transport: connection pool", () => {
  it("opens up to poolSize connections as load requires and spreads calls over them", async () => {
    const peer = await h2Peer(false);
    const transport = createGrpcTransport({
      address: `127.0.0.1:${peer.port}`,
      poolSize: 3,
      keepalive: false,
    });
    const client = createClient(Raw, transport);
    try {
      const calls = Array.from({ length: 6 }, () =>
        client.echo(new Uint8Array([1])).catch((e: unknown) => e),
      );
      await peer.streamsArrived(6);
      const sessions = new Set(peer.streams.map((s) => s.session));
      expect(sessions.size).toBe(3);
      await transport.close();
      for (const e of await Promise.all(calls)) expect((e as WeftError).reason).toBe("TRANSPORT_CLOSED");
    } finally {
      await transport.close();
      await peer.close();
    }
  });

  it("keeps one connection by default, and reuses an idle one before opening another", async () => {
    const held = await h2Peer(false);
    const one = createGrpcTransport({ address: `127.0.0.1:${held.port}`, keepalive: false });
    const answering = await h2Peer(true);
    const pooled = createGrpcTransport({
      address: `127.0.0.1:${answering.port}`,
      poolSize: 4,
      keepalive: false,
    });
    try {
      const calls = Array.from({ length: 4 }, () =>
        createClient(Raw, one)
          .echo(new Uint8Array([1]))
          .catch(() => {}),
      );
      await held.streamsArrived(4);
      expect(new Set(held.streams.map((s) => s.session)).size).toBe(1);
      // one call at a time: the connection is idle each time, so no other is opened
      for (let i = 0; i < 5; i++)
        expect(await createClient(Raw, pooled).echo(new Uint8Array([i]))).toEqual(Buffer.from([7]));
      expect(new Set(answering.streams.map((s) => s.session)).size).toBe(1);
      await one.close();
      await Promise.all(calls);
    } finally {
      await one.close();
      await pooled.close();
      await held.close();
      await answering.close();
    }
  });

  it("checks poolSize and keepalive", () => {
    expect(() => createGrpcTransport({ address: "127.0.0.1:1", poolSize: 0 })).toThrow(/poolSize/);
    expect(() => createGrpcTransport({ address: "127.0.0.1:1", keepalive: { intervalMs: -1 } })).toThrow(
      /keepalive.intervalMs/,
    );
    expect(() => createGrpcTransport({ address: "127.0.0.1:1", keepalive: { timeoutMs: 0.5 } })).toThrow(
      /keepalive.timeoutMs/,
    );
  });
});

describe("gRPC transport: keepalive", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a connection whose PING goes unanswered is closed and its calls fail UNAVAILABLE KEEPALIVE_TIMEOUT", async () => {
    // the transport's timers are fake; the sockets are real
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const peer = await h2Peer(false);
    const proxy = await freezableProxy(peer.port);
    const transport = createGrpcTransport({
      address: proxy.address,
      keepalive: { intervalMs: 10_000, timeoutMs: 2_000 },
    });
    try {
      const call = createClient(Raw, transport)
        .echo(new Uint8Array([1]))
        .catch((e: unknown) => e as WeftError);
      await peer.streamsArrived(1);
      proxy.freeze(); // the server is gone without a word
      vi.advanceTimersByTime(10_000); // the ping goes out
      vi.advanceTimersByTime(1_999);
      expect(await Promise.race([call, Promise.resolve("pending")])).toBe("pending");
      vi.advanceTimersByTime(1); // and no answer came in time
      const error = await call;
      expect(error).toMatchObject({ code: Code.UNAVAILABLE, reason: "KEEPALIVE_TIMEOUT" });
    } finally {
      await transport.close();
      proxy.close();
      await peer.close();
    }
  });

  it("pings a connection with calls in flight, which the live server answers; idle connections are not pinged", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const peer = await h2Peer(false);
    const transport = createGrpcTransport({
      address: `127.0.0.1:${peer.port}`,
      keepalive: { intervalMs: 1_000, timeoutMs: 60_000 },
    });
    try {
      const call = createClient(Raw, transport)
        .echo(new Uint8Array([1]))
        .catch((e: unknown) => e as WeftError);
      await peer.streamsArrived(1);
      // several pings while the call waits, each answered before the next: the call lives on
      while (peer.pings() < 3) {
        vi.advanceTimersByTime(1_000);
        await turn();
      }
      expect(await Promise.race([call, Promise.resolve("pending")])).toBe("pending");
      // the server answers; the connection goes idle and is pinged no more
      const stream = peer.streams[0]!;
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(encodeEnvelope(new Uint8Array([9])));
      expect(await call).toEqual(Buffer.from([9]));
      const after = peer.pings();
      for (let i = 0; i < 10; i++) {
        vi.advanceTimersByTime(1_000);
        await turn();
      }
      expect(peer.pings()).toBeLessThanOrEqual(after + 1); // at most a ping already on its way
    } finally {
      await transport.close();
      await peer.close();
    }
  });
});
