import { afterEach, describe, expect, it, vi } from "vitest";
import { seededRandom } from "../../test/seeded-random.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { type DecodeErrorInfo, FrameDecoder, type FrameDecoderOptions } from "./decode.ts";
import { encodeFrame } from "./encode.ts";
import { Flags, type Frame, type FrameLimits, FrameType, HEADER_SIZE } from "./frame.ts";
import vectors from "./golden-vectors.json" with { type: "json" };
import { decodeTimeout } from "./timeout.ts";

interface Sink {
  decoder: FrameDecoder;
  frames: Frame[];
  errors: DecodeErrorInfo[];
}

function sink(limits?: FrameDecoderOptions): Sink {
  const frames: Frame[] = [];
  const errors: DecodeErrorInfo[] = [];
  const decoder = new FrameDecoder(
    (f) => frames.push(f),
    (e) => errors.push(e),
    limits,
  );
  return { decoder, frames, errors };
}

/** A comparable form of a frame (bodies are views; compare their bytes). */
function plain(f: Frame) {
  return { ...f, body: Buffer.from(f.body).toString("hex") };
}

function header(type: number, streamId: number, metaLength: number, bodyLength: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt16BE(0x5746, 0);
  h[2] = 1;
  h[3] = type;
  h.writeUInt32BE(streamId, 8);
  h.writeUInt32BE(metaLength, 12);
  h.writeUInt32BE(bodyLength, 16);
  return h;
}

const goldenBytes = vectors.map((v) => Buffer.from(v.hex, "hex"));
const stream = Buffer.concat(goldenBytes);
const expected = (() => {
  const s = sink();
  s.decoder.push(stream);
  return s.frames.map(plain);
})();

const bigFrame = encodeFrame(
  FrameType.MESSAGE,
  0,
  21,
  2,
  0,
  [["x-big", "y".repeat(3000)]],
  Buffer.alloc(70_000, 0x5a),
);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("FrameDecoder: chunking", () => {
  it("decodes the golden stream in one chunk", () => {
    expect(expected).toHaveLength(vectors.length);
  });

  it("decodes when fed one byte at a time", () => {
    const s = sink();
    const all = Buffer.concat([stream, bigFrame]);
    let maxBuffered = 0;
    for (let i = 0; i < all.length; i++) {
      s.decoder.push(all.subarray(i, i + 1));
      maxBuffered = Math.max(maxBuffered, s.decoder.buffered);
    }
    expect(s.errors).toEqual([]);
    expect(s.frames.slice(0, -1).map(plain)).toEqual(expected);
    expect(plain(s.frames.at(-1)!)).toEqual({
      type: FrameType.MESSAGE,
      flags: 0,
      serializer: 2,
      compressor: 0,
      streamId: 21,
      metadata: [["x-big", "y".repeat(3000)]],
      body: "5a".repeat(70_000),
    });
    expect(s.decoder.buffered).toBe(0);
    expect(maxBuffered).toBe(bigFrame.length - HEADER_SIZE - 1);
  });

  it("decodes under random chunk sizes", () => {
    const all = Buffer.concat([stream, bigFrame, stream]);
    for (let seed = 1; seed <= 40; seed++) {
      const next = seededRandom(seed);
      const maxChunk = 1 + Math.floor(next() * (seed % 4 === 0 ? 100_000 : 64));
      const s = sink();
      let pos = 0;
      while (pos < all.length) {
        const n = 1 + Math.floor(next() * maxChunk);
        s.decoder.push(all.subarray(pos, pos + n));
        pos += n;
      }
      expect(s.errors).toEqual([]);
      expect(s.frames.map(plain)).toEqual([...expected, plain(s.frames[vectors.length]!), ...expected]);
      expect(s.frames[vectors.length]!.body.length).toBe(70_000);
      expect(s.decoder.buffered).toBe(0);
    }
  });

  it("splits many frames out of one chunk, in order", () => {
    const s = sink();
    const many = Buffer.concat(Array.from({ length: 50 }, () => stream));
    s.decoder.push(many);
    expect(s.frames).toHaveLength(50 * vectors.length);
    expect(s.frames.slice(-vectors.length).map(plain)).toEqual(expected);
  });

  it("accepts a plain Uint8Array that is a window on a larger buffer", () => {
    const backing = new Uint8Array(stream.length + 10);
    backing.set(stream, 5);
    const s = sink();
    s.decoder.push(new Uint8Array(backing.buffer, 5, stream.length));
    expect(s.frames.map(plain)).toEqual(expected);
  });

  it("gives a view into the chunk, not a copy, when a frame arrives whole", () => {
    const s = sink();
    const chunk = Buffer.concat([goldenBytes[0]!, goldenBytes[1]!]);
    s.decoder.push(chunk);
    expect(s.frames).toHaveLength(2);
    for (const f of s.frames) expect(f.body.buffer).toBe(chunk.buffer);
    const first = s.frames[0]!;
    const at = first.body.byteOffset;
    chunk[at - chunk.byteOffset] = 0x21;
    expect(first.body[0]).toBe(0x21);
  });

  it("holds only the bytes received of a frame that spans chunks, then joins them once", () => {
    const s = sink();
    const spy = vi.spyOn(Buffer, "allocUnsafe");
    s.decoder.push(bigFrame.subarray(0, 100));
    // A declared length alone allocates nothing: a peer cannot pin memory it has not sent.
    expect(spy).not.toHaveBeenCalled();
    expect(s.decoder.buffered).toBe(100 - HEADER_SIZE);
    s.decoder.push(bigFrame.subarray(100));
    expect(s.frames).toHaveLength(1);
    expect(s.frames[0]!.body.buffer).not.toBe(bigFrame.buffer);
    expect(Buffer.from(s.frames[0]!.body)).toEqual(
      bigFrame.subarray(bigFrame.length - s.frames[0]!.body.length),
    );
    spy.mockRestore();
  });

  it("emits a header-only frame as soon as its header is complete", () => {
    const s = sink();
    const cancel = encodeFrame(FrameType.CANCEL, 0, 7, 0, 0, undefined, undefined);
    s.decoder.push(cancel.subarray(0, 19));
    expect(s.frames).toHaveLength(0);
    expect(s.decoder.buffered).toBe(19);
    s.decoder.push(cancel.subarray(19));
    expect(s.frames).toHaveLength(1);
    expect(s.frames[0]!.body.length).toBe(0);
    expect(s.frames[0]!.metadata).toEqual([]);
    expect(s.decoder.buffered).toBe(0);
  });

  it("passes unknown frame types, unknown flags and a non-zero reserved byte through", () => {
    const b = encodeFrame(0x7f, 0xfc, 3, 9, 9, [["k", "v"]], Buffer.from("x"));
    b[7] = 0xff;
    const s = sink();
    s.decoder.push(b);
    expect(s.errors).toEqual([]);
    expect(s.frames.map(plain)).toEqual([
      {
        type: 0x7f,
        flags: 0xfc,
        serializer: 9,
        compressor: 9,
        streamId: 3,
        metadata: [["k", "v"]],
        body: "78",
      },
    ]);
  });
});

describe("FrameDecoder: limits", () => {
  const next = encodeFrame(FrameType.CANCEL, 0, 99, 0, 0, undefined, undefined);

  function expectLimitError(
    info: DecodeErrorInfo | undefined,
    reason: string,
    streamId: number,
    type: number,
  ) {
    expect(info).toBeDefined();
    expect(info!.fatal).toBe(false);
    expect(info!.streamId).toBe(streamId);
    expect(info!.type).toBe(type);
    expect(info!.error).toBeInstanceOf(WeftError);
    expect(info!.error.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(info!.error.reason).toBe(reason);
  }

  it("accepts metadata and frames exactly at the limits", () => {
    const s = sink({ maxFrameBytes: 100, maxMetadataBytes: 20 });
    const md: Array<[string, string]> = [["k", "v".repeat(15)]]; // 2 + 1 + 2 + 15 = 20
    s.decoder.push(encodeFrame(FrameType.MESSAGE, 0, 1, 0, 0, md, Buffer.alloc(80)));
    expect(s.errors).toEqual([]);
    expect(s.frames).toHaveLength(1);
  });

  it("reports metadata over the limit as RESOURCE_EXHAUSTED/METADATA_TOO_LARGE and goes on", () => {
    const s = sink({ maxMetadataBytes: 20 });
    const md: Array<[string, string]> = [["k", "v".repeat(16)]];
    s.decoder.push(Buffer.concat([encodeFrame(FrameType.REQUEST, 0, 5, 0, 0, md, Buffer.from("b")), next]));
    expect(s.errors).toHaveLength(1);
    expectLimitError(s.errors[0], "METADATA_TOO_LARGE", 5, FrameType.REQUEST);
    expect(s.frames.map((f) => f.streamId)).toEqual([99]);
  });

  it("reports the dropped frame's flags, so a one-way REQUEST over a limit is not answered", () => {
    const s = sink({ maxFrameBytes: 8 });
    s.decoder.push(
      encodeFrame(FrameType.REQUEST, Flags.END_STREAM | Flags.ONE_WAY, 9, 0, 0, [], Buffer.alloc(9)),
    );
    expectLimitError(s.errors[0], "FRAME_TOO_LARGE", 9, FrameType.REQUEST);
    expect(s.errors[0]!.flags).toBe(Flags.END_STREAM | Flags.ONE_WAY);
  });

  it("uses the default limits: 16 KiB of metadata, 4 MiB per frame", () => {
    const s = sink();
    s.decoder.push(header(FrameType.REQUEST, 1, 16 * 1024 + 1, 0));
    expectLimitError(s.errors[0], "METADATA_TOO_LARGE", 1, FrameType.REQUEST);
    const t = sink();
    t.decoder.push(header(FrameType.MESSAGE, 2, 0, 4 * 1024 * 1024 + 1));
    expectLimitError(t.errors[0], "FRAME_TOO_LARGE", 2, FrameType.MESSAGE);
    const u = sink();
    u.decoder.push(header(FrameType.MESSAGE, 2, 16 * 1024, 4 * 1024 * 1024 - 16 * 1024 + 1));
    expectLimitError(u.errors[0], "FRAME_TOO_LARGE", 2, FrameType.MESSAGE);
  });

  it("reports a frame over the limit as RESOURCE_EXHAUSTED/FRAME_TOO_LARGE and resyncs after it", () => {
    const s = sink({ maxFrameBytes: 64 });
    const oversize = encodeFrame(FrameType.MESSAGE, 0, 3, 0, 0, [["a", "b"]], Buffer.alloc(60, 1));
    const all = Buffer.concat([oversize, next, oversize, next]);
    for (let i = 0; i < all.length; i += 7) s.decoder.push(all.subarray(i, i + 7));
    expect(s.errors).toHaveLength(2);
    expectLimitError(s.errors[0], "FRAME_TOO_LARGE", 3, FrameType.MESSAGE);
    expect(s.errors[0]!.error.message).toContain("66");
    expect(s.frames.map((f) => f.streamId)).toEqual([99, 99]);
    expect(s.decoder.dead).toBe(false);
  });

  it("skips a declared 4 GiB frame without buffering or allocating it", () => {
    const s = sink();
    const declared = 0xffffffff;
    const zeros = Buffer.alloc(16 * 1024 * 1024);
    const head = header(FrameType.MESSAGE, 77, 0, declared);
    const tail = Buffer.concat([zeros.subarray(0, declared % zeros.length), next]);
    const allocUnsafe = vi.spyOn(Buffer, "allocUnsafe");
    const alloc = vi.spyOn(Buffer, "alloc");
    s.decoder.push(head);
    expectLimitError(s.errors[0], "FRAME_TOO_LARGE", 77, FrameType.MESSAGE);
    let left = declared;
    let maxBuffered = 0;
    while (left > zeros.length) {
      s.decoder.push(zeros);
      left -= zeros.length;
      maxBuffered = Math.max(maxBuffered, s.decoder.buffered);
    }
    // The last bytes of the skipped frame and the next frame arrive in the same chunk.
    expect(tail.length - next.length).toBe(left);
    s.decoder.push(tail);
    expect(maxBuffered).toBe(0);
    expect(allocUnsafe).not.toHaveBeenCalled();
    expect(alloc).not.toHaveBeenCalled();
    expect(s.errors).toHaveLength(1);
    expect(s.frames.map((f) => f.streamId)).toEqual([99]);
    expect(s.decoder.buffered).toBe(0);
  });

  it("skips a frame declaring 4 GiB of metadata and 4 GiB of body (8 GiB in all)", () => {
    const s = sink();
    s.decoder.push(header(FrameType.HEADERS, 8, 0xffffffff, 0xffffffff));
    expectLimitError(s.errors[0], "METADATA_TOO_LARGE", 8, FrameType.HEADERS);
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    let left = 2 * 0xffffffff;
    while (left > zeros.length) {
      s.decoder.push(zeros);
      left -= zeros.length;
    }
    s.decoder.push(zeros.subarray(0, left));
    expect(s.decoder.buffered).toBe(0);
    s.decoder.push(next);
    expect(s.frames.map((f) => f.streamId)).toEqual([99]);
  });
});

describe("FrameDecoder: fatal errors", () => {
  function expectFatal(s: Sink, reason: string) {
    expect(s.errors).toHaveLength(1);
    const info = s.errors[0]!;
    expect(info.fatal).toBe(true);
    expect(info.streamId).toBe(0);
    expect(info.type).toBe(0);
    expect(info.flags).toBe(0);
    expect(info.error).toBeInstanceOf(WeftError);
    expect(info.error.code).toBe(Code.INTERNAL);
    expect(info.error.reason).toBe(reason);
    expect(s.decoder.dead).toBe(true);
    expect(s.decoder.buffered).toBe(0);
    // Further input, even valid frames, is ignored.
    s.decoder.push(stream);
    expect(s.errors).toHaveLength(1);
  }

  it("rejects bad magic", () => {
    const s = sink();
    s.decoder.push(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expectFatal(s, "BAD_MAGIC");
    expect(s.errors[0]!.error.message).toContain("0x4745");
    expect(s.frames).toEqual([]);
  });

  it("rejects bad magic from the first byte, without waiting for a whole header", () => {
    const s = sink();
    s.decoder.push(Buffer.from("PING\r\n"));
    expectFatal(s, "BAD_MAGIC");
    const t = sink();
    t.decoder.push(Buffer.from([0x57]));
    expect(t.errors).toEqual([]);
    t.decoder.push(Buffer.from([0x00]));
    expectFatal(t, "BAD_MAGIC");
  });

  it("rejects another protocol version", () => {
    const b = Buffer.from(goldenBytes[0]!);
    b[2] = 2;
    const s = sink();
    s.decoder.push(b);
    expectFatal(s, "UNSUPPORTED_VERSION");
    expect(s.errors[0]!.error.message).toContain("version 2");
    const t = sink();
    t.decoder.push(b.subarray(0, 3));
    expectFatal(t, "UNSUPPORTED_VERSION");
  });

  it("reports frames before the bad bytes, then stops", () => {
    const s = sink();
    const garbage = Buffer.alloc(HEADER_SIZE, 0xee);
    s.decoder.push(Buffer.concat([goldenBytes[0]!, goldenBytes[1]!, garbage, goldenBytes[2]!]));
    expect(s.frames).toHaveLength(2);
    expectFatal(s, "BAD_MAGIC");
  });

  it("notices bad magic when a header straddles chunks", () => {
    const s = sink();
    const bytes = Buffer.concat([goldenBytes[5]!, Buffer.from("XXXXXXXXXXXXXXXXXXXXXXXX")]);
    for (let i = 0; i < bytes.length; i++) s.decoder.push(bytes.subarray(i, i + 1));
    expect(s.frames).toHaveLength(1);
    expectFatal(s, "BAD_MAGIC");
  });
});

describe("FrameDecoder: malformed metadata", () => {
  function frameWithRawMeta(meta: Buffer, streamId = 4): Buffer {
    const head = header(FrameType.REQUEST, streamId, meta.length, 1);
    head[4] = Flags.ONE_WAY;
    return Buffer.concat([head, meta, Buffer.from("!")]);
  }

  const cases: Array<[string, Buffer]> = [
    ["a truncated key length", Buffer.from([0x00])],
    ["an empty key", Buffer.from([0x00, 0x00, 0x00, 0x00])],
    ["a key running past the block", Buffer.from([0x00, 0x05, 0x61, 0x62])],
    ["a missing value length", Buffer.from([0x00, 0x01, 0x61])],
    ["a truncated value length", Buffer.from([0x00, 0x01, 0x61, 0x00])],
    ["a value running past the block", Buffer.from([0x00, 0x01, 0x61, 0x00, 0x03, 0x62])],
    ["invalid UTF-8 in a key", Buffer.from([0x00, 0x01, 0xff, 0x00, 0x00])],
    ["invalid UTF-8 in a value", Buffer.from([0x00, 0x01, 0x61, 0x00, 0x02, 0xc3, 0x28])],
  ];

  for (const [what, meta] of cases) {
    it(`reports ${what} as INTERNAL/MALFORMED_METADATA and goes on`, () => {
      const s = sink();
      const ok = encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(8));
      const bytes = Buffer.concat([frameWithRawMeta(meta), ok]);
      s.decoder.push(bytes);
      expect(s.errors).toHaveLength(1);
      const info = s.errors[0]!;
      expect(info.fatal).toBe(false);
      expect(info.streamId).toBe(4);
      expect(info.type).toBe(FrameType.REQUEST);
      expect(info.flags).toBe(Flags.ONE_WAY);
      expect(info.error.code).toBe(Code.INTERNAL);
      expect(info.error.reason).toBe("MALFORMED_METADATA");
      expect(s.frames.map((f) => f.type)).toEqual([FrameType.PING]);
      expect(s.decoder.dead).toBe(false);
    });
  }

  it("accepts an empty value", () => {
    const s = sink();
    s.decoder.push(frameWithRawMeta(Buffer.from([0x00, 0x01, 0x61, 0x00, 0x00])));
    expect(s.errors).toEqual([]);
    expect(s.frames[0]!.metadata).toEqual([["a", ""]]);
  });
});

describe("FrameDecoder: reserved keys", () => {
  function request(meta: Array<[string, string]>): Frame {
    const s = sink();
    s.decoder.push(encodeFrame(FrameType.REQUEST, Flags.END_STREAM, 1, 1, 0, meta, Buffer.from("!")));
    expect(s.errors).toEqual([]);
    return s.frames[0]!;
  }

  it("reads :path and a :timeout of a number without decoding them as UTF-8", () => {
    const decoded = vi.spyOn(Buffer.prototype, "toString");
    const frame = request([
      [":path", "/a.B/C"],
      [":timeout", "1500"],
    ]);
    expect(frame.metadata).toEqual([
      [":path", "/a.B/C"],
      [":timeout", "1500"],
    ]);
    // the path's value only: neither key nor the timeout's digits became a string by decoding
    expect(decoded).toHaveBeenCalledTimes(1);
  });

  // the server judges the text by §11 (decodeTimeout): the decoder must hand it over as it was sent
  it.each([
    "0",
    "1",
    "999",
    "999999999999",
    "0999",
    "00",
    "1000000000000",
    "9999999999999999",
    "",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1.5",
    "1e3",
    "0x10",
    "١٢",
    "１２",
  ])("keeps a :timeout of %j as it was sent", (value) => {
    const frame = request([[":timeout", value]]);
    expect(frame.metadata).toEqual([[":timeout", value]]);
    expect(decodeTimeout(frame.metadata[0]![1])).toBe(decodeTimeout(value));
  });

  it("decodes keys that only look like the reserved ones", () => {
    const meta: Array<[string, string]> = [
      [":timeouT", "5"],
      [":pat", "5"],
      [":paths", "5"],
      ["xtimeout", "5"],
      [":timeou\u00e9", "5"],
    ];
    expect(request(meta).metadata).toEqual(meta);
  });

  it("still refuses invalid UTF-8 in a :timeout value", () => {
    const s = sink();
    const meta = Buffer.from([0x00, 0x08, ...Buffer.from(":timeout"), 0x00, 0x02, 0xc3, 0x28]);
    const head = header(FrameType.REQUEST, 4, meta.length, 0);
    s.decoder.push(Buffer.concat([head, meta]));
    expect(s.frames).toEqual([]);
    expect(s.errors.map((e) => e.error.reason)).toEqual(["MALFORMED_METADATA"]);
  });
});

describe("FrameDecoder: strict, as a receiving peer decodes (§4, §7.3)", () => {
  const strict = (limits?: Partial<FrameLimits>): Sink => sink({ ...limits, strict: true });

  const cancel = encodeFrame(FrameType.CANCEL, 0, 7, 0, 0, undefined, undefined);

  /** A frame of unknown type 0x0c whose 5-byte metadata block is malformed (key length 0xffff). */
  function unknownWithBadMetadata(): Buffer {
    const meta = Buffer.from([0xff, 0xff, 0x41, 0x42, 0x43]);
    const body = Buffer.from("body");
    return Buffer.concat([header(0x0c, 3, meta.length, body.length), meta, body]);
  }

  it("skips an unknown frame type by its lengths, without parsing its malformed metadata", () => {
    const bytes = Buffer.concat([unknownWithBadMetadata(), cancel]);
    // the default (inspecting) decoder reads the metadata and finds it malformed
    const inspecting = sink();
    inspecting.decoder.push(bytes);
    expect(inspecting.errors.map((e) => e.error.reason)).toEqual(["MALFORMED_METADATA"]);
    // a peer skips the frame: no error, no frame, and the next frame decodes
    for (const step of [bytes.length, 1, 3]) {
      const s = strict();
      for (let at = 0; at < bytes.length; at += step) {
        s.decoder.push(bytes.subarray(at, at + step));
        expect(s.decoder.buffered).toBeLessThan(HEADER_SIZE); // the skipped payload is never held
      }
      expect(s.errors).toEqual([]);
      expect(s.frames.map((f) => [f.type, f.streamId])).toEqual([[FrameType.CANCEL, 7]]);
    }
  });

  it("skips unknown types 0x00 and 0x0b–0xff whatever they declare, over the limits included", () => {
    for (const type of [0x00, 0x0b, 0x0c, 0x7f, 0xff]) {
      const s = strict({ maxFrameBytes: 16, maxMetadataBytes: 8 });
      const big = header(type, 0, 1000, 1000);
      s.decoder.push(big);
      s.decoder.push(Buffer.alloc(2000, 0xff));
      s.decoder.push(cancel);
      expect(s.errors).toEqual([]);
      expect(s.frames.map((f) => f.type)).toEqual([FrameType.CANCEL]);
    }
  });

  it("still checks magic and version on an unknown frame's header", () => {
    const s = strict();
    const h = header(0x0c, 0, 0, 0);
    h[2] = 2;
    s.decoder.push(h);
    expect(s.errors.map((e) => [e.error.reason, e.fatal])).toEqual([["UNSUPPORTED_VERSION", true]]);
  });

  it("decodes every known type as the default decoder does", () => {
    const s = strict();
    s.decoder.push(stream);
    expect(s.errors).toEqual([]);
    expect(s.frames.map(plain)).toEqual(expected);
  });

  it("accepts a PING or PONG of exactly 8 body bytes on stream 0 without metadata", () => {
    const s = strict();
    const body = Buffer.from("01020304050607ff", "hex");
    s.decoder.push(encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, body));
    s.decoder.push(encodeFrame(FrameType.PONG, 0, 0, 0, 0, undefined, body));
    expect(s.errors).toEqual([]);
    expect(s.frames.map((f) => [f.type, Buffer.from(f.body).toString("hex")])).toEqual([
      [FrameType.PING, "01020304050607ff"],
      [FrameType.PONG, "01020304050607ff"],
    ]);
  });

  it.each([
    ["a 7-byte body", 0, undefined, 7],
    ["a 9-byte body", 0, undefined, 9],
    ["an empty body", 0, undefined, 0],
    ["stream id 3", 3, undefined, 8],
    ["metadata", 0, [["k", "v"]] as Array<[string, string]>, 8],
  ])(
    "refuses a PING or PONG with %s as MALFORMED_PING, skips it unread and goes on",
    (_, streamId, meta, size) => {
      for (const type of [FrameType.PING, FrameType.PONG]) {
        const s = strict();
        s.decoder.push(encodeFrame(type, 0, streamId, 0, 0, meta, Buffer.alloc(size, 1)));
        s.decoder.push(cancel);
        expect(s.frames.map((f) => f.type)).toEqual([FrameType.CANCEL]);
        expect(s.errors).toHaveLength(1);
        const info = s.errors[0]!;
        expect(info.fatal).toBe(false);
        expect(info.streamId).toBe(0); // the connection's, whatever stream the frame named
        expect(info.type).toBe(type);
        expect(info.error).toMatchObject({ code: Code.INTERNAL, reason: "MALFORMED_PING" });
      }
    },
  );

  it("refuses a PING that declares a huge body from its header alone", () => {
    const s = strict();
    s.decoder.push(header(FrameType.PING, 0, 0, 0xffffffff));
    expect(s.errors.map((e) => e.error.reason)).toEqual(["MALFORMED_PING"]);
    expect(s.decoder.buffered).toBe(0);
  });
});

describe("FrameDecoder: strict, on garbage", () => {
  it("never throws and never holds more than one frame at the limit", () => {
    const random = seededRandom(0x57460007);
    const limits = { maxFrameBytes: 256, maxMetadataBytes: 64 };
    for (let run = 0; run < 200; run++) {
      // a valid stream with random bytes written over it, so headers stay close to real ones
      const bytes = Buffer.from(stream);
      for (let i = 0; i < 8; i++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      const errors: DecodeErrorInfo[] = [];
      const d = new FrameDecoder(
        () => {},
        (e) => errors.push(e),
        { ...limits, strict: true },
      );
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + Math.floor(random() * 64);
        d.push(bytes.subarray(at, at + n));
        at += n;
        expect(d.buffered).toBeLessThanOrEqual(limits.maxFrameBytes);
      }
      for (const e of errors) expect(e.error).toBeInstanceOf(WeftError);
    }
  });
});
