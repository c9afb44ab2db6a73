import { Duplex } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  messageType,
  oneway,
  type Server,
  type ServerOptions,
  SILENT_LOGGER,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { encodeFrame, Flags, FrameType, PseudoKey } from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, echoHandlers, startServer } from "../fixtures.ts";
import { type RawServer, startRawServer, tappedTransport } from "../raw-peer.ts";

const Missing = defineService("test.v1.Missing", { notify: oneway(messageType<{ event: string }>()) });

const servers: Server[] = [];
const rawServers: RawServer[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});

async function notifyServer(
  onNotify: (event: string) => void,
  onError?: (e: unknown, path?: string) => void,
) {
  const { server, address } = await startServer(
    (s) =>
      s.register(Echo, {
        echo: (req) => ({ text: req.text }),
        count: async function* () {},
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: (req) => onNotify(req.event),
      }),
    onError === undefined ? {} : { onError },
  );
  servers.push(server);
  return address;
}

describe("one-way calls over TCP", () => {
  it("run the handler and send nothing back", async () => {
    const handled = deferred<string>();
    const address = await notifyServer((event) => handled.resolve(event));
    const { transport, logs } = tappedTransport({ address });
    transports.push(transport);
    const client = createClient(Echo, transport);

    await expect(client.notify({ event: "order-created" })).resolves.toBeUndefined();
    expect(await handled.promise).toBe("order-created");
    // The handler has finished. A unary call on the same connection now: had the server answered
    // the one-way call, that answer would have been written before this call's response.
    await expect(client.echo({ text: "after" })).resolves.toEqual({ text: "after" });
    expect(logs).toHaveLength(1);
    const frames = logs[0]!.frames;
    expect(frames.map((f) => [f.type, f.streamId])).toEqual([[FrameType.RESPONSE, 2]]);
  });

  it("resolve once written, though the peer never answers anything", async () => {
    const raw = await startRawServer();
    rawServers.push(raw);
    const transport = createTcpTransport({ address: raw.address, keepalive: false });
    transports.push(transport);
    await createClient(Echo, transport).notify({ event: "fire-and-forget" });
    const { log } = await raw.connection(0);
    const request = await log.next((f) => f.type === FrameType.REQUEST);
    expect(request.flags & Flags.ONE_WAY).toBe(Flags.ONE_WAY);
    expect(request.flags & Flags.END_STREAM).toBe(Flags.END_STREAM);
    expect(request.metadata).toContainEqual([PseudoKey.path, "/test.v1.Echo/notify"]);
    expect(Echo.methods.notify.input.decode(request.body, "msgpack")).toEqual({ event: "fire-and-forget" });
  });

  it("to an unknown method produce no answer; the server reports UNIMPLEMENTED to onError", async () => {
    const reported = deferred<[unknown, string | undefined]>();
    const address = await notifyServer(
      () => {},
      (e, path) => reported.resolve([e, path]),
    );
    const { transport, logs } = tappedTransport({ address });
    transports.push(transport);

    await expect(createClient(Missing, transport).notify({ event: "lost" })).resolves.toBeUndefined();
    const [error, path] = await reported.promise;
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.UNIMPLEMENTED);
    expect(path).toBe("/test.v1.Missing/notify");
    await createClient(Echo, transport).echo({ text: "after" });
    expect(logs[0]!.frames.map((f) => [f.type, f.streamId])).toEqual([[FrameType.RESPONSE, 2]]);
  });

  it("fail with UNAVAILABLE when the frame cannot be written", async () => {
    const address = await notifyServer(() => {});
    const transport = createTcpTransport({ address });
    const client = createClient(Echo, transport);
    await client.echo({ text: "connect" });
    await transport.close();
    const e = (await client.notify({ event: "late" }).catch((e: unknown) => e)) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.UNAVAILABLE);
  });
});

describe("one-way calls the server rejects before running them", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const PEER = "192.0.2.7:40000";
  const shed = new WeftError(Code.RESOURCE_EXHAUSTED, "server overloaded: call shed", {
    reason: "OVERLOADED",
  });
  let nextId = 1;
  const request = (path: string, meta: Array<[string, string]> = [], body = Buffer.from([0x80])) =>
    encodeFrame(
      FrameType.REQUEST,
      Flags.END_STREAM | Flags.ONE_WAY,
      nextId++,
      3, // msgpack
      0,
      [[PseudoKey.path, path], ...meta],
      body,
    );

  /**
   * A server fed through `accept` by a socket the test writes frames into; its admission sheds the
   * calls that carry `x-shed`. Nothing it writes is read: it must write nothing for one-way calls.
   */
  function feed(options: ServerOptions) {
    nextId = 1;
    const written: Buffer[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk);
        done();
      },
    });
    const server = createServer({
      admission: {
        admit: (_path, headers) => (headers.has("x-shed") ? shed : undefined),
        finished: () => {},
      },
      ...options,
    }).register(Echo, echoHandlers);
    servers.push(server);
    server.accept(socket, PEER);
    return {
      written,
      /** Pushes the frames as the socket's input, and lets the server read them. */
      async send(frames: Buffer[]): Promise<void> {
        socket.push(Buffer.concat(frames));
        await new Promise((resolve) => setImmediate(resolve));
      },
    };
  }

  /** 10,000 rejected one-way calls: 6,000 to an unknown method, then 3,000 expired on arrival, then 1,000 shed. */
  const flood = () => [
    ...Array.from({ length: 6000 }, () => request("/test.v1.Missing/notify")),
    ...Array.from({ length: 3000 }, () => request("/test.v1.Echo/notify", [[PseudoKey.timeout, "0"]])),
    ...Array.from({ length: 1000 }, () => request("/test.v1.Echo/notify", [["x-shed", "1"]])),
  ];

  it("are reported to onError with path and peer, at most 10 a minute, then one exact count by reason", async () => {
    const reports: Array<{ error: WeftError; path: string | undefined; peer: string | undefined }> = [];
    const { written, send } = feed({
      onError: (error, path, peer) => reports.push({ error: error as WeftError, path, peer }),
    });
    await send(flood());
    expect(reports).toHaveLength(10);
    for (const report of reports) {
      expect(report).toMatchObject({ path: "/test.v1.Missing/notify", peer: PEER });
      expect(report.error).toMatchObject({ code: Code.UNIMPLEMENTED, reason: "UNKNOWN_METHOD" });
    }
    vi.advanceTimersByTime(59_999);
    expect(reports).toHaveLength(10);
    vi.advanceTimersByTime(1);
    expect(reports).toHaveLength(11);
    const summary = reports[10]!;
    expect(summary.path).toBeUndefined();
    expect(summary.error).toMatchObject({ code: Code.RESOURCE_EXHAUSTED, reason: "REPORTS_SUPPRESSED" });
    // 10 reported + 9,990 counted: every one of the 10,000
    expect(summary.error.rawMessage).toBe(
      "9990 more rejected one-way calls in the last 60 s were not reported " +
        "(UNKNOWN_METHOD 5990, DEADLINE_EXCEEDED 3000, OVERLOADED 1000)",
    );
    // a quiet minute says nothing; a later one reports again, and counts afresh
    vi.advanceTimersByTime(60_000);
    expect(reports).toHaveLength(11);
    await send(Array.from({ length: 12 }, () => request("/test.v1.Echo/notify", [[PseudoKey.timeout, "0"]])));
    expect(reports).toHaveLength(21);
    expect(reports[20]).toMatchObject({ path: "/test.v1.Echo/notify", peer: PEER });
    expect(reports[20]!.error.reason).toBe("DEADLINE_EXCEEDED");
    vi.advanceTimersByTime(60_000);
    expect(reports).toHaveLength(22);
    expect(reports[21]!.error.rawMessage).toBe(
      "2 more rejected one-way calls in the last 60 s were not reported (DEADLINE_EXCEEDED 2)",
    );
    // nothing is ever answered
    expect(written).toEqual([]);
  });

  it("write one short warn line each to the logger without onError, and never an error with a stack", async () => {
    const warn: string[] = [];
    const error = vi.fn();
    const logger = { ...SILENT_LOGGER, warn: (line: object | string) => warn.push(String(line)), error };
    const { send } = feed({ logger });
    await send(flood());
    expect(warn).toHaveLength(10);
    expect(warn[0]).toBe(
      `weft server: one-way call /test.v1.Missing/notify from ${PEER} rejected: UNKNOWN_METHOD: unknown method /test.v1.Missing/notify`,
    );
    vi.advanceTimersByTime(60_000);
    expect(warn).toHaveLength(11);
    expect(warn[10]).toBe(
      "weft server: 9990 more rejected one-way calls in the last 60 s were not reported " +
        "(UNKNOWN_METHOD 5990, DEADLINE_EXCEEDED 3000, OVERLOADED 1000)",
    );
    expect(error).not.toHaveBeenCalled();
  });

  it("include one whose body does not decode, with the method's path", async () => {
    const reports: Array<{ reason: string; path: string | undefined }> = [];
    const { send } = feed({ onError: (e, path) => reports.push({ reason: (e as WeftError).reason, path }) });
    // 0xc1 is never used in MessagePack
    await send([request("/test.v1.Echo/notify", [], Buffer.from([0xc1]))]);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toEqual({ reason: "DECODE_FAILED", path: "/test.v1.Echo/notify" });
  });
});
