import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  Metadata,
  type Server,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { Echo, startServer } from "../fixtures.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

/** An Echo server whose handlers echo request headers and write response headers and trailers. */
async function metadataServer() {
  const { server, address } = await startServer((s) =>
    s.register(Echo, {
      echo: (req, ctx) => {
        ctx.responseHeaders.set("x-reply-header", `h:${req.text}`);
        ctx.responseTrailers.set("x-reply-trailer", `t:${req.text}`);
        if (req.text === "fail") {
          throw new WeftError(Code.ABORTED, "failed on purpose", { metadata: { "x-error-md": "e" } });
        }
        return { text: req.text, headers: ctx.requestHeaders.toJSON() };
      },
      count: async function* (req, ctx) {
        ctx.responseHeaders.set("x-stream-header", "sh");
        for (let i = 0; i < req.n; i++) yield { i };
        ctx.responseTrailers.set("x-stream-trailer", `sent ${req.n}`);
      },
      sum: async () => ({ total: 0, count: 0 }),
      chat: async function* () {},
      notify: () => {},
    }),
  );
  servers.push(server);
  const transport = createTcpTransport({ address });
  transports.push(transport);
  return transport;
}

describe("metadata over TCP", () => {
  it("delivers request headers (per call, per client, as Metadata or a record) to the handler", async () => {
    const transport = await metadataServer();
    const client = createClient(Echo, transport, {
      headers: { "x-client-default": "d", "x-both": "client" },
    });
    const fromRecord = await client.echo({ text: "a" }, { headers: { "X-Per-Call": "1", "x-both": "call" } });
    expect(fromRecord.headers).toEqual({ "x-client-default": "d", "x-per-call": "1", "x-both": "call" });
    const fromMetadata = await client.echo({ text: "b" }, { headers: new Metadata({ "x-md": "v" }) });
    expect(fromMetadata.headers).toEqual({ "x-client-default": "d", "x-both": "client", "x-md": "v" });
  });

  it("carries UTF-8 values and base64 -bin values unchanged", async () => {
    const transport = await metadataServer();
    const blob = Buffer.from([0, 255, 1, 254]).toString("base64");
    const reply = await createClient(Echo, transport).echo(
      { text: "a" },
      { headers: { "x-utf8": "héllo ✓ 日本", "x-blob-bin": blob } },
    );
    expect(reply.headers).toEqual({ "x-utf8": "héllo ✓ 日本", "x-blob-bin": blob });
  });

  it("carries pseudo-headers to the protocol only, never into the handler's request headers", async () => {
    const transport = await metadataServer();
    const reply = await createClient(Echo, transport).echo({ text: "a" }, { timeoutMs: 5000 });
    expect(Object.keys(reply.headers ?? {}).filter((k) => k.startsWith(":"))).toEqual([]);
  });

  it("delivers a unary handler's response headers and trailers to onHeader and onTrailer", async () => {
    const transport = await metadataServer();
    const client = createClient(Echo, transport);
    const seen: string[] = [];
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    const reply = await client.echo(
      { text: "u" },
      {
        onHeader: (h) => {
          seen.push("header");
          headers = h;
        },
        onTrailer: (t) => {
          seen.push("trailer");
          trailers = t;
        },
      },
    );
    expect(reply.text).toBe("u");
    expect(seen).toEqual(["header", "trailer"]);
    expect(headers?.toJSON()).toEqual({ "x-reply-header": "h:u" });
    expect(trailers?.toJSON()).toEqual({ "x-reply-trailer": "t:u" });
  });

  it("delivers a server stream's headers before the first message and its trailers after the last", async () => {
    const transport = await metadataServer();
    const client = createClient(Echo, transport);
    const events: string[] = [];
    for await (const m of client.count(
      { n: 3 },
      {
        onHeader: (h) => events.push(`header ${h.get("x-stream-header")}`),
        onTrailer: (t) => events.push(`trailer ${t.get("x-stream-trailer")}`),
      },
    )) {
      events.push(`message ${m.i}`);
    }
    expect(events).toEqual(["header sh", "message 0", "message 1", "message 2", "trailer sent 3"]);
  });

  it("sends a failing handler's trailers with the error, as the error's metadata", async () => {
    const transport = await metadataServer();
    const client = createClient(Echo, transport);
    const e = (await client.echo({ text: "fail" }).catch((e: unknown) => e)) as WeftError;
    expect(e).toBeInstanceOf(WeftError);
    expect(e.code).toBe(Code.ABORTED);
    expect(e.metadata.get("x-reply-trailer")).toBe("t:fail");
    expect(e.metadata.get("x-error-md")).toBe("e");
  });
});
