import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  defineService,
  messageType,
  oneway,
  type Server,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { Flags, FrameType, PseudoKey } from "../../src/protocol/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
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
