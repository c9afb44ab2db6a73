import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  createClient,
  defineService,
  messageType,
  rawBytes,
  Serializer,
  type SerializerName,
  type Server,
  type Transport,
  unary,
} from "../../src/index.ts";
import { FrameType } from "../../src/protocol/index.ts";
import { Echo, startServer } from "../fixtures.ts";
import { tappedTransport } from "../raw-peer.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

const JsonOnly = defineService("test.v1.JsonOnly", {
  echo: unary(messageType<{ text: string }>({ serializers: ["json"] }), messageType<{ text: string }>()),
});
const Raw = defineService("test.v1.Raw", { echo: unary(rawBytes, rawBytes) });

async function serve() {
  const serverSaw: SerializerName[] = [];
  const { server, address } = await startServer(
    (s) => {
      s.register(Echo, {
        echo: (req) => ({ text: req.text }),
        count: async function* (req) {
          for (let i = 0; i < req.n; i++) yield { i };
        },
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: () => {},
      });
      s.register(JsonOnly, { echo: (req) => ({ text: req.text }) });
      s.register(Raw, { echo: (bytes) => bytes.slice().reverse() });
    },
    {
      interceptors: [
        (next) => async (call) => {
          serverSaw.push(call.serializer);
          return next(call);
        },
      ],
    },
  );
  servers.push(server);
  const { transport, logs } = tappedTransport({ address });
  transports.push(transport);
  return { transport, logs, serverSaw };
}

/** The serializer byte of every RESPONSE and MESSAGE frame the client received. */
const responseSerializers = (logs: ReturnType<typeof tappedTransport>["logs"]) =>
  logs[0]!.frames
    .filter((f) => f.type === FrameType.RESPONSE || f.type === FrameType.MESSAGE)
    .map((f) => f.serializer);

describe("serializers", () => {
  it("uses the serializer chosen per call, and the server answers in it", async () => {
    const { transport, logs, serverSaw } = await serve();
    const client = createClient(Echo, transport);
    await expect(client.echo({ text: "as json" }, { serializer: "json" })).resolves.toEqual({
      text: "as json",
    });
    await expect(client.echo({ text: "as msgpack" }, { serializer: "msgpack" })).resolves.toEqual({
      text: "as msgpack",
    });
    await expect(client.echo({ text: "default" })).resolves.toEqual({ text: "default" });
    expect(serverSaw).toEqual(["json", "msgpack", "msgpack"]);
    expect(responseSerializers(logs)).toEqual([Serializer.json, Serializer.msgpack, Serializer.msgpack]);
    const json = logs[0]!.frames[0]!;
    expect(JSON.parse(Buffer.from(json.body).toString("utf8"))).toEqual({ text: "as json" });
  });

  it("answers a stream's messages in the request's serializer", async () => {
    const { transport, logs } = await serve();
    const client = createClient(Echo, transport);
    const got: unknown[] = [];
    for await (const m of client.count({ n: 2 }, { serializer: "json" })) got.push(m);
    expect(got).toEqual([{ i: 0 }, { i: 1 }]);
    expect(responseSerializers(logs)).toEqual([Serializer.json, Serializer.json]);
  });

  it("takes the client's default serializer, and a per-call one over it", async () => {
    const { transport, serverSaw } = await serve();
    const client = createClient(Echo, transport, { serializer: "json" });
    await client.echo({ text: "a" });
    await client.echo({ text: "b" }, { serializer: "msgpack" });
    expect(serverSaw).toEqual(["json", "msgpack"]);
  });

  it("defaults to the message type's first serializer, and carries raw bytes untouched", async () => {
    const { transport, serverSaw } = await serve();
    await expect(createClient(JsonOnly, transport).echo({ text: "j" })).resolves.toEqual({ text: "j" });
    const reversed = await createClient(Raw, transport).echo(new Uint8Array([1, 2, 3, 0, 255]));
    expect([...reversed]).toEqual([255, 0, 3, 2, 1]);
    expect(serverSaw).toEqual(["json", "raw"]);
  });

  it("refuses, before sending, a serializer the message type does not support", async () => {
    const { transport, serverSaw } = await serve();
    await expect(
      createClient(JsonOnly, transport).echo({ text: "x" }, { serializer: "msgpack" }),
    ).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT, reason: "UNSUPPORTED_SERIALIZER" });
    expect(serverSaw).toEqual([]);
  });
});
