/**
 * The request of a server-streaming call when an interceptor has replaced it with an iterable of its
 * own: the client reads its one message before sending, and that read is part of the call (errors,
 * deadline, cancellation, transparent retry). `setTimeout`, `clearTimeout` and `Date` are faked.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  type Interceptor,
  type Server,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { encodeFrame, encodeStatus, FrameType } from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { type RawServer, startRawServer } from "../raw-peer.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
const rawServers: RawServer[] = [];

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});

async function countServer() {
  const { server, address } = await startServer((s) =>
    s.register(Echo, {
      echo: (req) => ({ text: req.text }),
      count: async function* (req) {
        for (let i = 0; i < req.n; i++) yield { i };
      },
      sum: async () => ({ total: 0, count: 0 }),
      chat: async function* () {},
      notify: () => {},
    }),
  );
  servers.push(server);
  return address;
}

/** Replaces a streaming call's request with what `source` makes of it: a one-shot generator. */
function replaceRequest(source: (messages: AsyncIterable<unknown>) => AsyncGenerator<unknown>): Interceptor {
  return (next) => (call) => {
    if (call.stream) call.messages = source(call.messages);
    return next(call);
  };
}

function outcome(read: AsyncIterable<unknown>): Promise<unknown[] | WeftError> {
  return (async () => {
    const items: unknown[] = [];
    for await (const item of read) items.push(item);
    return items;
  })().catch((e: unknown) => e as WeftError);
}

describe("a server-streaming request from an interceptor's iterable", () => {
  it("that fails before its message rejects the call with a WeftError", async () => {
    const address = await countServer();
    const transport = createTcpTransport({ address });
    transports.push(transport);
    const failing = replaceRequest(async function* () {
      yield* [];
      throw new Error("boom");
    });
    const empty = replaceRequest(async function* () {});
    for (const interceptor of [failing, empty]) {
      const client = createClient(Echo, transport, { interceptors: [interceptor] });
      const e = await outcome(client.count({ n: 1 }));
      expect(e).toBeInstanceOf(WeftError);
      expect((e as WeftError).code).toBe(Code.CANCELLED);
    }
  });

  it("is read once: a call the server refused goes elsewhere with the same message", async () => {
    // the first address refuses every call without starting it, as a server going away does
    const refusing = await startRawServer((socket, log) => {
      void log
        .next((f) => f.type === FrameType.REQUEST)
        .then((request) => {
          const refused = new WeftError(Code.UNAVAILABLE, "going away", { reason: "REFUSED_STREAM" });
          socket.write(
            encodeFrame(FrameType.END, 0, request.streamId, 0, 0, undefined, encodeStatus(refused)),
          );
        });
    });
    rawServers.push(refusing);
    const address = await countServer();
    const transport = createTcpTransport({ address: [refusing.address, address], keepalive: false });
    transports.push(transport);
    let reads = 0;
    const client = createClient(Echo, transport, {
      interceptors: [
        replaceRequest(async function* (messages) {
          reads++;
          yield* messages;
        }),
      ],
    });
    expect(await outcome(client.count({ n: 2 }))).toEqual([{ i: 0 }, { i: 1 }]);
    expect(reads).toBe(1);
    const { log } = await refusing.connection(0);
    expect(log.ofType(FrameType.REQUEST)).toHaveLength(1);
  });

  it("that never yields fails at the call's deadline", async () => {
    const address = await countServer();
    const transport = createTcpTransport({ address });
    transports.push(transport);
    await createClient(Echo, transport).echo({ text: "connect first" });
    const pulled = deferred();
    const client = createClient(Echo, transport, {
      interceptors: [
        replaceRequest(async function* () {
          pulled.resolve();
          await new Promise(() => {});
        }),
      ],
    });
    const result = outcome(client.count({ n: 1 }, { timeoutMs: 300 }));
    await pulled.promise;
    vi.advanceTimersByTime(299);
    expect(await Promise.race([result, Promise.resolve("pending")])).toBe("pending");
    vi.advanceTimersByTime(1);
    expect(await result).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("that never yields fails when the caller aborts", async () => {
    const address = await countServer();
    const transport = createTcpTransport({ address });
    transports.push(transport);
    await createClient(Echo, transport).echo({ text: "connect first" });
    const pulled = deferred();
    const client = createClient(Echo, transport, {
      interceptors: [
        replaceRequest(async function* () {
          pulled.resolve();
          await new Promise(() => {});
        }),
      ],
    });
    const controller = new AbortController();
    const result = outcome(client.count({ n: 1 }, { signal: controller.signal }));
    await pulled.promise;
    controller.abort();
    expect(await result).toMatchObject({ code: Code.CANCELLED });
  });
});
