import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  constants,
  createServer as createH2Server,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import {
  bidiStreaming,
  Code,
  clientStreaming,
  createClient,
  defineService,
  type Interceptor,
  Reason,
  rawBytes,
  serverStreaming,
  unary,
  type WeftError,
} from "@weft/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createGrpcTransport } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { deferred } from "./fixtures.ts";

const Raw = defineService("test.Raw", {
  echo: unary(rawBytes, rawBytes),
  upload: clientStreaming(rawBytes, rawBytes),
  chat: bidiStreaming(rawBytes, rawBytes),
});

interface Seen {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A bare `node:http2` gRPC peer the test scripts: `answer` decides what each stream gets (by its
 * index), so refusals and silence can be staged exactly.
 */
async function peer(answer: (stream: ServerHttp2Stream, index: number, seen: Seen) => void) {
  const seen: Seen[] = [];
  const sessions = new Set<Http2Session>();
  let arrived = deferred<Seen>();
  const server: Http2Server = createH2Server();
  server.on("session", (s: Http2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    const entry: Seen = { headers, body: Buffer.alloc(0) };
    const index = seen.push(entry) - 1;
    stream.on("error", () => {});
    stream.on("data", (chunk: Buffer) => {
      entry.body = Buffer.concat([entry.body, chunk]);
    });
    const a = arrived;
    arrived = deferred<Seen>();
    a.resolve(entry);
    answer(stream, index, entry);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    seen,
    /** Resolves with the next stream the peer receives. */
    next: () => arrived.promise,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Answers a gRPC call once its request has ended: one response message (the request body's messages echoed whole), OK. */
function answerOk(stream: ServerHttp2Stream, reply: Uint8Array = new Uint8Array([7])): void {
  stream.on("end", () => {
    if (stream.destroyed) return;
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(encodeEnvelope(reply));
  });
}

/** Whether a promise has settled by the time the event loop has run once more. */
function settled(p: Promise<unknown>): Promise<boolean> {
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
  ]);
}

describe("the gRPC transport against a scripted HTTP/2 peer", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    vi.useRealTimers();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("keeps a deadline beyond setTimeout's 24.8-day limit, and DEADLINE_EXCEEDED carries deadline-ms", async () => {
    const p = await peer(() => {}); // never answers
    cleanups.push(p.close);
    const transport = createGrpcTransport({ address: p.address });
    cleanups.push(() => transport.close());
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const DAY = 86_400_000;
    const start = Date.now();
    const outcome = createClient(Raw, transport)
      .echo(new Uint8Array([1]), { timeoutMs: 30 * DAY })
      .then(
        () => undefined,
        (e: unknown) => e as WeftError,
      );
    const { headers } = await p.next();
    expect(headers["grpc-timeout"]).toBe(`${(30 * DAY) / 1000}S`);
    vi.advanceTimersByTime(25 * DAY); // past 0x7fffffff ms, where a clamped timer would fire
    expect(await settled(outcome)).toBe(false);
    vi.advanceTimersByTime(5 * DAY);
    const error = await outcome;
    expect(error?.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(error?.metadata.get("deadline-ms")).toBe(String(start + 30 * DAY));
  });

  it("fails a call UNAVAILABLE/CONNECTION_CLOSED when the connection closes under it (a killed server), so failover resends it", async () => {
    // the server answered the headers, then its process died: the kernel closes the socket, no GOAWAY
    const p = await peer((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      setImmediate(() => {
        for (const socket of sockets) socket.destroy();
      });
    });
    const sockets: Socket[] = [];
    p.server.on("connection", (socket: Socket) => sockets.push(socket));
    cleanups.push(p.close);
    const transport = createGrpcTransport({ address: p.address });
    cleanups.push(() => transport.close());
    const error = await createClient(Raw, transport)
      .echo(new Uint8Array([1]))
      .then(
        () => undefined,
        (e: unknown) => e as WeftError,
      );
    expect(error).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.CONNECTION_CLOSED });
  });

  for (const goaway of [false, true]) {
    it(`retries a unary call refused with REFUSED_STREAM${goaway ? " by a server going away (on a new connection)" : ""}, and no session is left holding the process`, async () => {
      const p = await peer((stream, index) => {
        if (index > 0) {
          answerOk(stream);
          return;
        }
        if (goaway) stream.session?.goaway();
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
      });
      cleanups.push(p.close);
      // the connections' sockets, to see whether the transport leaves one ref'd (keeping the process alive)
      const sockets: Array<{ socket: Socket; refs: boolean[] }> = [];
      const transport = createGrpcTransport({
        address: p.address,
        http2: {
          createConnection: () => {
            const socket = netConnect(p.port, "127.0.0.1");
            const entry = { socket, refs: [] as boolean[] };
            sockets.push(entry);
            const ref = socket.ref.bind(socket);
            const unref = socket.unref.bind(socket);
            socket.ref = () => {
              entry.refs.push(true);
              return ref();
            };
            socket.unref = () => {
              entry.refs.push(false);
              return unref();
            };
            return socket;
          },
        },
      });
      cleanups.push(() => transport.close());
      const reply = await createClient(Raw, transport).echo(new Uint8Array([1, 2]));
      expect(Array.from(reply)).toEqual([7]);
      expect(p.seen).toHaveLength(2); // refused once, served on the retry
      expect(p.seen[1]!.body).toEqual(encodeEnvelope(new Uint8Array([1, 2])));
      expect(sockets).toHaveLength(goaway ? 2 : 1);
      // every stream gave back the ref it took: no connection keeps the process alive
      for (const { socket, refs } of sockets) expect(socket.destroyed || refs.at(-1) === false).toBe(true);
      expect(sockets.flatMap((s) => s.refs).filter((r) => r)).toHaveLength(2);
    });
  }

  for (const kind of ["upload", "chat"] as const) {
    it(`does not retry a refused ${kind === "upload" ? "client-streaming" : "bidi"} call: its requests could be lost`, async () => {
      const p = await peer((stream, index) => {
        if (index === 0) stream.close(constants.NGHTTP2_REFUSED_STREAM);
        else answerOk(stream);
      });
      cleanups.push(p.close);
      const transport = createGrpcTransport({ address: p.address });
      cleanups.push(() => transport.close());
      // the caller's stream has not produced anything when the refusal arrives: a retry would start a
      // second pump on the same iterator while the first still waits on it
      const gate = deferred();
      cleanups.push(() => gate.resolve());
      async function* requests() {
        await gate.promise;
        for (let i = 1; i <= 3; i++) yield new Uint8Array([i]);
      }
      const client = createClient(Raw, transport);
      const error = await (kind === "upload"
        ? client.upload(requests())
        : (async () => {
            for await (const _ of client.chat(requests()));
          })()
      ).then(
        () => undefined,
        (e: unknown) => e as WeftError,
      );
      expect(error?.code).toBe(Code.UNAVAILABLE);
      expect(p.seen).toHaveLength(1); // no second attempt
    });
  }

  it("compresses a request only when gzip makes it smaller (core's rule)", async () => {
    const p = await peer((stream) => answerOk(stream));
    cleanups.push(p.close);
    const transport = createGrpcTransport({
      address: p.address,
      compression: { algorithm: "gzip", threshold: 64 },
    });
    cleanups.push(() => transport.close());
    const client = createClient(Raw, transport);
    await client.echo(new Uint8Array(4096)); // zeros: compress well
    await client.echo(new Uint8Array(randomBytes(4096))); // random: gzip would grow it
    await client.echo(new Uint8Array(8)); // under the threshold
    expect(p.seen.map((s) => s.headers["grpc-encoding"])).toEqual(["gzip", "gzip", "gzip"]);
    const [zeros, random, small] = p.seen.map((s) => s.body);
    expect(zeros![0]).toBe(1);
    expect(zeros!.length).toBeLessThan(4096);
    expect(random![0]).toBe(0);
    expect(random!.length).toBe(5 + 4096);
    expect(small![0]).toBe(0);
  });
});

const Feed = defineService("test.Feed", { watch: serverStreaming(rawBytes, rawBytes) });

/** Replaces a streaming call's request with an iterable whose one message never comes. */
const stalledRequest: Interceptor = (next) => (call) => {
  if (call.stream) {
    call.messages = (async function* () {
      await new Promise(() => {});
    })();
  }
  return next(call);
};

describe("a server-streaming request an interceptor wrapped, over gRPC as over Weft TCP", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    vi.useRealTimers();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function stalledCall(options: { timeoutMs?: number; signal?: AbortSignal }) {
    const p = await peer(() => {});
    cleanups.push(p.close);
    const transport = createGrpcTransport({ address: p.address });
    cleanups.push(() => transport.close());
    const client = createClient(Feed, transport, { interceptors: [stalledRequest] });
    const outcome = (async () => {
      for await (const _ of client.watch(new Uint8Array([1]), options));
    })().then(
      () => undefined,
      (e: unknown) => e as WeftError,
    );
    return { p, outcome };
  }

  it("fails DEADLINE_EXCEEDED at the call's deadline when its message never comes", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const { p, outcome } = await stalledCall({ timeoutMs: 300 });
    vi.advanceTimersByTime(299);
    expect(await settled(outcome)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await settled(outcome)).toBe(true);
    expect(await outcome).toMatchObject({ code: Code.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED" });
    expect(p.seen).toHaveLength(0); // nothing was sent
  });

  it("fails CANCELLED as soon as the caller aborts", async () => {
    const controller = new AbortController();
    const { p, outcome } = await stalledCall({ signal: controller.signal });
    expect(await settled(outcome)).toBe(false);
    controller.abort();
    expect(await settled(outcome)).toBe(true);
    expect(await outcome).toMatchObject({ code: Code.CANCELLED });
    expect(p.seen).toHaveLength(0);
  });
});
