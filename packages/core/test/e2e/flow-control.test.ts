/**
 * Credit-based flow control end to end over real TCP: a producer that would send 1 GiB into a reader
 * that stops reading stalls within one window (either direction), then resumes and delivers all of
 * it; empty messages are bounded too; and senders also wait on the connection's write queue.
 */
import { createServer as createNetServer, connect as netConnect, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  clientStreaming,
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  rawBytes,
  type Server,
  type ServiceImpl,
  serverStreaming,
  type Transport,
  unary,
} from "../../src/index.ts";
import { INITIAL_WINDOW, MESSAGE_OVERHEAD, TcpTransport } from "../../src/internal.ts";
import { deferred } from "../deferred.ts";
import { startServer } from "../fixtures.ts";

const MSG = 64 * 1024;
/** 16,384 × 64 KiB: the producer's intended total is 1 GiB. */
const TOTAL_MSGS = 16 * 1024;

const Bulk = defineService("test.v1.Bulk", {
  download: serverStreaming(rawBytes, rawBytes),
  upload: clientStreaming(rawBytes, rawBytes),
  ping: unary(rawBytes, rawBytes),
});

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

function chunk(seq: number): Buffer {
  const b = Buffer.allocUnsafe(MSG);
  b.writeUInt32BE(seq, 0);
  b.writeUInt32BE((seq ^ 0xa5a5a5a5) >>> 0, MSG - 4);
  return b;
}

function checkChunk(m: Uint8Array, seq: number): void {
  const b = Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  if (b.length !== MSG || b.readUInt32BE(0) !== seq || b.readUInt32BE(MSG - 4) !== (seq ^ 0xa5a5a5a5) >>> 0) {
    throw new Error(
      `message ${seq} corrupted or out of order (got seq ${b.readUInt32BE(0)}, ${b.length} bytes)`,
    );
  }
}

/** A handful of round trips on the same connection and event-loop turns: any frame in flight lands. */
async function settle(ping: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await ping();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** How far the process's peak RSS rose above `rssAtStart` (bytes), in MiB: a 1 GiB backlog cannot hide here. */
function peakRssGrowthMiB(rssAtStart: number): number {
  return (process.resourceUsage().maxRSS * 1024 - rssAtStart) / 2 ** 20;
}

function arrayBuffersMiB(): number {
  return process.memoryUsage().arrayBuffers / 2 ** 20;
}

describe("credit-based flow control over TCP", () => {
  it("a server producer of 1 GiB into a client that stops reading stalls at one window, then resumes", async () => {
    let produced = 0;
    let cancelled = false;
    const { server, address } = await startServer((s) =>
      s.register(Bulk, {
        async *download(_req, ctx) {
          ctx.signal.addEventListener("abort", () => {
            cancelled = true;
          });
          for (let i = 0; i < TOTAL_MSGS; i++) {
            produced++;
            yield chunk(i);
          }
        },
        upload: async () => new Uint8Array(0),
        ping: (m) => m,
      }),
    );
    servers.push(server);
    const transport = createTcpTransport({ address, poolSize: 1 });
    transports.push(transport);
    const client = createClient(Bulk, transport);
    const ping = () => client.ping(new Uint8Array([1]));

    const rssAtStart = process.memoryUsage().rss;
    const before = arrayBuffersMiB();
    const it = client.download(new Uint8Array(0))[Symbol.asyncIterator]();
    const READ = 4;
    for (let i = 0; i < READ; i++) {
      const r = await it.next();
      checkChunk(r.value as Uint8Array, i);
    }
    // The reader now stops (without cancelling). The window lets at least one window's worth out…
    await vi.waitFor(() => expect(produced * MSG).toBeGreaterThanOrEqual(INITIAL_WINDOW), {
      timeout: 5000,
      interval: 5,
    });
    // …and then the producer must be stuck, however many round trips we let pass.
    const stalledAt = produced;
    await settle(ping);
    expect(produced).toBe(stalledAt);
    // window + the message the sender holds while it waits for credit; nothing near 1 GiB
    expect(produced * MSG).toBeLessThanOrEqual(READ * MSG + INITIAL_WINDOW + 2 * MSG);
    const growth = arrayBuffersMiB() - before;
    expect(growth).toBeLessThan(64);
    console.log(
      `server→client stall: produced ${produced} messages (${((produced * MSG) / 2 ** 20).toFixed(2)} MiB of 1024 MiB), arrayBuffers +${growth.toFixed(1)} MiB`,
    );

    // Reading more grants credit: the producer moves on by what was consumed, and no further.
    const READ_MORE = 8;
    for (let i = READ; i < READ + READ_MORE; i++) checkChunk((await it.next()).value as Uint8Array, i);
    await vi.waitFor(() => expect(produced).toBeGreaterThan(stalledAt), { timeout: 5000, interval: 5 });
    await settle(ping);
    expect(produced * MSG).toBeLessThanOrEqual((READ + READ_MORE) * MSG + INITIAL_WINDOW + 2 * MSG);

    // Resume: everything arrives, in order, and the stream completes.
    const t0 = performance.now();
    let seq = READ + READ_MORE;
    for (;;) {
      const r = await it.next();
      if (r.done === true) break;
      checkChunk(r.value, seq++);
    }
    expect(seq).toBe(TOTAL_MSGS);
    expect(cancelled).toBe(false);
    expect(peakRssGrowthMiB(rssAtStart)).toBeLessThan(512);
    const ms = performance.now() - t0;
    console.log(
      `server→client drain: ${TOTAL_MSGS - READ - READ_MORE} messages in ${ms.toFixed(0)} ms (${(1024 / (ms / 1000)).toFixed(0)} MiB/s), peak RSS +${peakRssGrowthMiB(rssAtStart).toFixed(0)} MiB`,
    );
  });

  it("a client producer of 1 GiB into a server handler that stops reading stalls at one window, then resumes", async () => {
    const READ = 4;
    let produced = 0;
    let handlerRead = 0;
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { server, address } = await startServer((s) =>
      s.register(Bulk, {
        async *download() {},
        async upload(requests) {
          let seq = 0;
          for await (const m of requests) {
            checkChunk(m, seq++);
            handlerRead = seq;
            if (seq === READ) await released; // stop reading, without cancelling
          }
          const reply = Buffer.allocUnsafe(4);
          reply.writeUInt32BE(seq, 0);
          return reply;
        },
        ping: (m) => m,
      }),
    );
    servers.push(server);
    const transport = createTcpTransport({ address, poolSize: 1 });
    transports.push(transport);
    const client = createClient(Bulk, transport);
    const ping = () => client.ping(new Uint8Array([1]));
    await ping();

    async function* producer() {
      for (let i = 0; i < TOTAL_MSGS; i++) {
        produced++;
        yield chunk(i);
      }
    }
    const rssAtStart = process.memoryUsage().rss;
    const before = arrayBuffersMiB();
    const reply = client.upload(producer());
    await vi.waitFor(
      () => {
        expect(handlerRead).toBe(READ);
        expect(produced * MSG).toBeGreaterThanOrEqual(INITIAL_WINDOW);
      },
      { timeout: 5000, interval: 5 },
    );
    const stalledAt = produced;
    await settle(ping);
    expect(produced).toBe(stalledAt);
    expect(produced * MSG).toBeLessThanOrEqual(READ * MSG + INITIAL_WINDOW + 2 * MSG);
    const growth = arrayBuffersMiB() - before;
    expect(growth).toBeLessThan(64);
    console.log(
      `client→server stall: produced ${produced} messages (${((produced * MSG) / 2 ** 20).toFixed(2)} MiB of 1024 MiB), arrayBuffers +${growth.toFixed(1)} MiB`,
    );

    const t0 = performance.now();
    release();
    const count = Buffer.from(await reply).readUInt32BE(0);
    expect(count).toBe(TOTAL_MSGS);
    expect(produced).toBe(TOTAL_MSGS);
    expect(peakRssGrowthMiB(rssAtStart)).toBeLessThan(512);
    const ms = performance.now() - t0;
    console.log(
      `client→server drain: ${TOTAL_MSGS - READ} messages in ${ms.toFixed(0)} ms (${(1024 / (ms / 1000)).toFixed(0)} MiB/s), peak RSS +${peakRssGrowthMiB(rssAtStart).toFixed(0)} MiB`,
    );
  });

  it("empty messages are flow-controlled too: a reader that stops reading stops an endless producer", async () => {
    const INTENDED = 100_000_000;
    let produced = 0;
    const { server, address } = await startServer((s) =>
      s.register(Bulk, {
        async *download() {
          const empty = new Uint8Array(0);
          for (let i = 0; i < INTENDED; i++) {
            produced++;
            yield empty;
          }
        },
        upload: async () => new Uint8Array(0),
        ping: (m) => m,
      }),
    );
    servers.push(server);
    const transport = createTcpTransport({ address, poolSize: 1 });
    transports.push(transport);
    const client = createClient(Bulk, transport);
    const ping = () => client.ping(new Uint8Array([1]));
    const it = client.download(new Uint8Array(0))[Symbol.asyncIterator]();
    expect((await it.next()).value).toHaveLength(0);
    // Each message costs its frame header in window: one window is a bounded number of messages.
    const perWindow = INITIAL_WINDOW / MESSAGE_OVERHEAD;
    await vi.waitFor(() => expect(produced).toBeGreaterThanOrEqual(perWindow), {
      timeout: 5000,
      interval: 5,
    });
    const stalledAt = produced;
    await settle(ping);
    expect(produced).toBe(stalledAt);
    expect(produced).toBeLessThanOrEqual(perWindow + 2);
    console.log(`empty messages: the producer stalled after ${produced} of ${INTENDED}`);

    // Reading on grants credit again: more than a window's worth flows, then the reader cancels.
    for (let i = 0; i < 2 * perWindow; i++) expect((await it.next()).done).toBe(false);
    expect(produced).toBeGreaterThan(2 * perWindow);
    await it.return?.();
    await vi.waitFor(() => expect(server.inFlight).toBe(0));
    const after = produced;
    await settle(ping);
    expect(produced).toBe(after);
  });

  it("many streams into a socket that stops reading: senders wait on the connection's write queue", async () => {
    const STREAMS = 64;
    const PER_STREAM = 32; // 2 MiB each: by credit alone, every stream could send a full 1 MiB window
    const HIGH_WATER = 1024 * 1024;
    let produced = 0;
    const server = createServer({ onError: () => {} });
    server.register(Bulk, {
      async *download() {
        for (let i = 0; i < PER_STREAM; i++) {
          produced++;
          yield chunk(i);
        }
      },
      upload: async () => new Uint8Array(0),
      ping: (m) => m,
    });
    servers.push(server);
    let serverSocket: Socket | undefined;
    const listener = createNetServer({ noDelay: true }, (socket) => {
      serverSocket = socket;
      server.accept(socket, "test");
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const { port } = listener.address() as { port: number };
    let clientSocket: Socket | undefined;
    const transport = new TcpTransport({ address: `127.0.0.1:${port}`, keepalive: false }, (target) => {
      clientSocket = netConnect({ host: target.host, port: target.port, noDelay: true });
      return clientSocket;
    });
    transports.push(transport);
    try {
      const client = createClient(Bulk, transport);
      await client.ping(new Uint8Array([1]));
      clientSocket!.pause(); // the client process stops reading its socket altogether

      const iterators = Array.from({ length: STREAMS }, () =>
        client.download(new Uint8Array(0))[Symbol.asyncIterator](),
      );
      const firsts = iterators.map((it) => it.next());
      await vi.waitFor(
        () => {
          expect(produced).toBeGreaterThanOrEqual(STREAMS);
          expect(serverSocket!.writableLength).toBeGreaterThanOrEqual(HIGH_WATER);
        },
        { timeout: 5000, interval: 5 },
      );
      const stalledAt = produced;
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(produced).toBe(stalledAt);
      // Credit alone would allow 64 MiB; the write queue stops everyone near 1 MiB plus one message
      // per stream (the one sent as the queue crossed the mark) and one each producer holds.
      expect(produced * MSG).toBeLessThanOrEqual(HIGH_WATER + 2 * STREAMS * MSG);
      expect(produced * MSG).toBeLessThan((STREAMS * INITIAL_WINDOW) / 4);
      console.log(
        `socket stall: ${STREAMS} streams produced ${((produced * MSG) / 2 ** 20).toFixed(2)} MiB, server write queue ${(serverSocket!.writableLength / 2 ** 20).toFixed(2)} MiB`,
      );

      clientSocket!.resume();
      await Promise.all(
        iterators.map(async (it, k) => {
          const first = await firsts[k]!;
          checkChunk(first.value as Uint8Array, 0);
          let seq = 1;
          for (;;) {
            const r = await it.next();
            if (r.done === true) break;
            checkChunk(r.value, seq++);
          }
          expect(seq).toBe(PER_STREAM);
        }),
      );
      expect(produced).toBe(STREAMS * PER_STREAM);
    } finally {
      listener.close();
    }
  });
});

describe("back-pressure is checked before the next message is pulled", () => {
  const SMALL = 1000;
  /** Messages one window lets out: a sender with any credit left may send one more, overdrawing it. */
  const FIT = Math.ceil(INITIAL_WINDOW / (SMALL + MESSAGE_OVERHEAD));

  /** A Bulk server with `download` and `upload` as given, and a client on one connection. */
  async function serveBulk(impl: Pick<ServiceImpl<typeof Bulk>, "download" | "upload">) {
    const { server, address } = await startServer((s) => s.register(Bulk, { ...impl, ping: (m) => m }));
    servers.push(server);
    const transport = createTcpTransport({ address, poolSize: 1 });
    transports.push(transport);
    const client = createClient(Bulk, transport);
    return { client, ping: () => client.ping(new Uint8Array([1])) };
  }

  it("a client that stops reading: the handler's generator made exactly what the window lets out", async () => {
    let produced = 0;
    const { client, ping } = await serveBulk({
      async *download() {
        for (let i = 0; i < 3 * FIT; i++) {
          produced++;
          yield new Uint8Array(SMALL);
        }
      },
      upload: async () => new Uint8Array(0),
    });
    const it = client.download(new Uint8Array(0))[Symbol.asyncIterator]();
    await it.next(); // one read, far from the half window that grants credit back; then nothing
    await vi.waitFor(() => expect(produced).toBeGreaterThanOrEqual(FIT), { timeout: 5000, interval: 5 });
    await settle(ping);
    expect(produced).toBe(FIT); // not FIT + 1: no message is pulled to wait for credit
    let read = 1;
    while (!(await it.next()).done) read++;
    expect(read).toBe(3 * FIT);
  });

  it("a server that stops reading: the caller's generator made exactly what the window lets out", async () => {
    let produced = 0;
    const released = deferred();
    const { client, ping } = await serveBulk({
      async *download() {},
      async upload(requests) {
        await released.promise; // reads nothing until then: no credit goes back
        let n = 0;
        for await (const _ of requests) n++;
        return new Uint8Array([n >> 8, n & 0xff]);
      },
    });
    async function* producer() {
      for (let i = 0; i < 3 * FIT; i++) {
        produced++;
        yield new Uint8Array(SMALL);
      }
    }
    const reply = client.upload(producer());
    await vi.waitFor(() => expect(produced).toBeGreaterThanOrEqual(FIT), { timeout: 5000, interval: 5 });
    await settle(ping);
    expect(produced).toBe(FIT);
    released.resolve();
    const n = await reply;
    expect((n[0]! << 8) | n[1]!).toBe(3 * FIT);
  });
});
