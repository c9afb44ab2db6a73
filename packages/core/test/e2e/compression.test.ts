/**
 * Per-message compression end to end over real TCP, checked on the wire through a tapping proxy, and
 * decompression bombs refused (either direction) without being inflated.
 */
import { once } from "node:events";
import { createServer as createNetServer, connect as netConnect, type Socket } from "node:net";
import { brotliDecompressSync, constants, createBrotliCompress, gunzipSync, gzipSync } from "node:zlib";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  bidiStreaming,
  Code,
  type CompressionOptions,
  Compressor,
  createClient,
  createTcpTransport,
  defineService,
  Metadata,
  rawBytes,
  Serializer,
  type Server,
  type Transport,
  unary,
  WeftError,
} from "../../src/index.ts";
import { decodeStatus, encodeFrame, Flags, type Frame, FrameType } from "../../src/protocol/index.ts";
import { Echo, startServer } from "../fixtures.ts";
import { FrameLog, rawConnect, startRawServer } from "../raw-peer.ts";

const Raw = defineService("test.v1.Raw", {
  echo: unary(rawBytes, rawBytes),
  chat: bidiStreaming(rawBytes, rawBytes),
});

const servers: Server[] = [];
const transports: Transport[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/** A TCP proxy that decodes every frame crossing it, in each direction, without touching the bytes. */
async function startTapProxy(target: string) {
  const toServer = new FrameLog();
  const toClient = new FrameLog();
  const sockets: Socket[] = [];
  const i = target.lastIndexOf(":");
  const listener = createNetServer((down) => {
    const up = netConnect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
    sockets.push(up, down);
    down.on("data", (chunk: Buffer) => {
      toServer.push(chunk);
      up.write(chunk);
    });
    up.on("data", (chunk: Buffer) => {
      toClient.push(chunk);
      down.write(chunk);
    });
    down.on("end", () => up.end());
    up.on("end", () => down.end());
    down.on("error", () => up.destroy());
    up.on("error", () => down.destroy());
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as { port: number };
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  });
  return { address: `127.0.0.1:${port}`, toServer, toClient };
}

/** Server with brotli responses, client with gzip requests at 1 KiB, talking through a tap. */
async function setup(
  client: CompressionOptions | null = { algorithm: "gzip", threshold: 1024 },
  server: CompressionOptions | null = { algorithm: "brotli" },
) {
  const started = await startServer(
    (s) => {
      s.register(Raw, {
        echo: (m) => m,
        async *chat(requests) {
          for await (const m of requests) yield m;
        },
      });
      s.register(Echo, {
        echo: (req) => ({ text: req.text }),
        async *count() {},
        sum: async () => ({ total: 0, count: 0 }),
        async *chat() {},
        notify: () => {},
      });
    },
    server === null ? {} : { compression: server },
  );
  servers.push(started.server);
  const tap = await startTapProxy(started.address);
  const transport = createTcpTransport({
    address: tap.address,
    ...(client === null ? {} : { compression: client }),
  });
  transports.push(transport);
  return { tap, raw: createClient(Raw, transport), echo: createClient(Echo, transport) };
}

/** Compressible bytes of a given size (text, as real payloads mostly are). */
function payload(size: number, seed = 0): Uint8Array {
  const text = Buffer.from(`weft message ${seed}: the quick brown fox jumps over the lazy dog. `);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += text.length) text.copy(out, at, 0, Math.min(text.length, size - at));
  return out;
}

const ofType = (log: FrameLog, type: number): Frame[] => log.frames.filter((f) => f.type === type);

describe("per-message compression on the wire", () => {
  it("requests at or above the threshold travel gzip, responses brotli; smaller ones travel as they are", async () => {
    const { tap, raw } = await setup();
    const sizes = [0, 10, 1023, 1024, 4096, 256 * 1024];
    for (const [k, size] of sizes.entries()) {
      const data = payload(size, k);
      expect(Buffer.from(await raw.echo(data)).equals(data)).toBe(true);
    }
    const requests = ofType(tap.toServer, FrameType.REQUEST);
    const responses = ofType(tap.toClient, FrameType.RESPONSE);
    expect(requests).toHaveLength(sizes.length);
    expect(responses).toHaveLength(sizes.length);
    for (const [k, size] of sizes.entries()) {
      const request = requests[k]!;
      const response = responses.find((f) => f.streamId === request.streamId)!;
      const data = payload(size, k);
      if (size >= 1024) {
        expect(request.compressor, `request of ${size} bytes`).toBe(Compressor.gzip);
        expect(response.compressor, `response of ${size} bytes`).toBe(Compressor.brotli);
        expect(request.body.length).toBeLessThan(size / 4);
        expect(response.body.length).toBeLessThan(size / 4);
        expect(gunzipSync(request.body).equals(data)).toBe(true);
        expect(brotliDecompressSync(response.body).equals(data)).toBe(true);
      } else {
        expect(request.compressor, `request of ${size} bytes`).toBe(Compressor.none);
        expect(response.compressor, `response of ${size} bytes`).toBe(Compressor.none);
        expect(Buffer.from(request.body).equals(data)).toBe(true);
        expect(Buffer.from(response.body).equals(data)).toBe(true);
      }
    }
  });

  it("each message of a stream is compressed on its own merits, both ways", async () => {
    const { tap, raw } = await setup();
    const sizes = [100, 5000, 1023, 1024, 0, 20_000, 3];
    async function* requests() {
      for (const [k, size] of sizes.entries()) yield payload(size, k);
    }
    const replies: Uint8Array[] = [];
    for await (const m of raw.chat(requests())) replies.push(m);
    expect(replies.map((m) => m.length)).toEqual(sizes);
    for (const [k, size] of sizes.entries())
      expect(Buffer.from(replies[k]!).equals(payload(size, k))).toBe(true);

    const up = ofType(tap.toServer, FrameType.MESSAGE);
    const down = ofType(tap.toClient, FrameType.MESSAGE);
    expect(up.map((f) => f.compressor)).toEqual(
      sizes.map((s) => (s >= 1024 ? Compressor.gzip : Compressor.none)),
    );
    expect(down.map((f) => f.compressor)).toEqual(
      sizes.map((s) => (s >= 1024 ? Compressor.brotli : Compressor.none)),
    );
    // control frames are never compressed
    for (const f of [...tap.toServer.frames, ...tap.toClient.frames]) {
      if (f.type !== FrameType.MESSAGE && f.type !== FrameType.REQUEST && f.type !== FrameType.RESPONSE) {
        expect(f.compressor).toBe(Compressor.none);
      }
    }
  });

  it("works with a code-first message type (msgpack) too", async () => {
    const { tap, echo } = await setup();
    const text = "compress me, ".repeat(500);
    await expect(echo.echo({ text })).resolves.toEqual({ text });
    expect(ofType(tap.toServer, FrameType.REQUEST)[0]!.compressor).toBe(Compressor.gzip);
    expect(ofType(tap.toClient, FrameType.RESPONSE)[0]!.compressor).toBe(Compressor.brotli);
  });

  it("each side decompresses whatever the other sends, with no compression configured itself", async () => {
    const { tap, raw } = await setup(null, { algorithm: "gzip", threshold: 16 });
    const data = payload(4096);
    expect(Buffer.from(await raw.echo(data)).equals(data)).toBe(true);
    expect(ofType(tap.toServer, FrameType.REQUEST)[0]!.compressor).toBe(Compressor.none);
    expect(ofType(tap.toClient, FrameType.RESPONSE)[0]!.compressor).toBe(Compressor.gzip);
  });
});

describe("decompression bombs", () => {
  const LIMIT = 1024 * 1024;
  /** Concatenated gzip members: each inflates 1 KiB into 1 MiB of zeros. */
  const gzipBomb = (mib: number) => {
    const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
    return Buffer.concat(Array.from({ length: mib }, () => member));
  };
  /** One brotli stream of zeros, fed 1 MiB at a time (the test never holds the inflated size). */
  const brotliBomb = async (mib: number) => {
    const zeros = Buffer.alloc(1024 * 1024);
    const compressor = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
    const chunks: Buffer[] = [];
    compressor.on("data", (chunk: Buffer) => chunks.push(chunk));
    const ended = once(compressor, "end");
    for (let i = 0; i < mib; i++) if (!compressor.write(zeros)) await once(compressor, "drain");
    compressor.end();
    await ended;
    return Buffer.concat(chunks);
  };
  const GZIP_BOMB_MIB = 512;
  const BROTLI_BOMB_MIB = 256;
  const gzipped = gzipBomb(GZIP_BOMB_MIB);
  let brotli = Buffer.alloc(0);
  beforeAll(async () => {
    brotli = await brotliBomb(BROTLI_BOMB_MIB);
  });

  it.each([
    { name: "gzip", compressor: Compressor.gzip, bomb: () => gzipped, expands: GZIP_BOMB_MIB },
    { name: "brotli", compressor: Compressor.brotli, bomb: () => brotli, expands: BROTLI_BOMB_MIB },
  ])(
    "a $name request inflating to $expands MiB is refused without being inflated",
    async ({ compressor, bomb, expands }) => {
      const body = bomb();
      expect(body.length).toBeLessThan(LIMIT); // the frame itself is within the limit
      const { server, address } = await startServer(
        (s) => s.register(Raw, { echo: (m) => m, async *chat() {} }),
        {
          limits: { maxFrameBytes: LIMIT },
        },
      );
      servers.push(server);
      const peer = await rawConnect(address);
      cleanups.push(async () => {
        peer.socket.destroy();
      });
      const rssBefore = process.memoryUsage().rss;
      const peakBefore = process.resourceUsage().maxRSS;
      peer.send(
        encodeFrame(
          FrameType.REQUEST,
          Flags.END_STREAM,
          1,
          Serializer.raw,
          compressor,
          [[":path", "/test.v1.Raw/echo"]],
          body,
        ),
      );
      const end = await peer.log.next((f) => f.streamId === 1);
      expect(end.type).toBe(FrameType.END);
      const error = decodeStatus(end.body, new Metadata());
      expect(error).toBeInstanceOf(WeftError);
      expect(error!.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(error!.reason).toBe("MESSAGE_TOO_LARGE");
      // maxRSS is the process's peak so far: an earlier test's peak, since given back, is not this
      // call's growth; a body inflated here would have raised the peak far above the earlier one
      const peakAfter = process.resourceUsage().maxRSS;
      const peakGrowthMiB = peakAfter === peakBefore ? 0 : (peakAfter * 1024 - rssBefore) / 2 ** 20;
      expect(peakGrowthMiB).toBeLessThan(expands / 4);
      console.log(
        `${body.length}-byte ${compressor === Compressor.gzip ? "gzip" : "brotli"} bomb of ${expands} MiB refused; peak RSS +${peakGrowthMiB.toFixed(1)} MiB`,
      );

      // the connection is still good: the next call on it is answered
      const hello = Buffer.from("hello");
      peer.send(
        encodeFrame(
          FrameType.REQUEST,
          Flags.END_STREAM,
          3,
          Serializer.raw,
          0,
          [[":path", "/test.v1.Raw/echo"]],
          hello,
        ),
      );
      const response = await peer.log.next((f) => f.streamId === 3);
      expect(response.type).toBe(FrameType.RESPONSE);
      expect(Buffer.from(response.body).toString()).toBe("hello");
    },
  );

  it("a server answering with a gzip bomb gets RESOURCE_EXHAUSTED at the client, not an inflated message", async () => {
    const rawServer = await startRawServer((socket, log) => {
      void log
        .next((f) => f.type === FrameType.REQUEST)
        .then((request) => {
          socket.write(
            encodeFrame(
              FrameType.RESPONSE,
              Flags.END_STREAM,
              request.streamId,
              Serializer.raw,
              Compressor.gzip,
              undefined,
              gzipped,
            ),
          );
        });
    });
    cleanups.push(() => rawServer.close());
    const transport = createTcpTransport({ address: rawServer.address, limits: { maxFrameBytes: LIMIT } });
    transports.push(transport);
    const client = createClient(Raw, transport);
    const rssBefore = process.memoryUsage().rss;
    const error = await client.echo(Buffer.from("hi")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((error as WeftError).reason).toBe("MESSAGE_TOO_LARGE");
    expect((process.resourceUsage().maxRSS * 1024 - rssBefore) / 2 ** 20).toBeLessThan(GZIP_BOMB_MIB / 2);
  });
});
