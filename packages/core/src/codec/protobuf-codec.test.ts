import { create, equals, toBinary } from "@bufbuild/protobuf";
import {
  DurationSchema,
  Int64ValueSchema,
  SourceContextSchema,
  StructSchema,
  TimestampSchema,
  timestampFromMs,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, expectTypeOf, it } from "vitest";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { CodecType } from "./message-codec.ts";
import { protobufType, rawBytes } from "./protobuf-codec.ts";
import type { SerializerName } from "./serializer.ts";

function caught(fn: () => unknown): WeftError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    return e as WeftError;
  }
  throw new Error("expected a throw");
}

const SERIALIZERS = ["protobuf", "json", "msgpack"] as const;

describe("protobufType", () => {
  const Timestamp = protobufType(TimestampSchema);
  const Duration = protobufType(DurationSchema);
  const Struct = protobufType(StructSchema);

  it("offers protobuf first, then JSON and MessagePack", () => {
    expect(Timestamp.serializers).toEqual(["protobuf", "json", "msgpack"]);
    expectTypeOf<CodecType<typeof Timestamp>>().toEqualTypeOf<ReturnType<typeof timestampFromMs>>();
  });

  for (const s of SERIALIZERS) {
    it(`round-trips well-known types as ${s}`, () => {
      const ts = timestampFromMs(1_700_000_000_123);
      expect(equals(TimestampSchema, Timestamp.decode(Timestamp.encode(ts, s), s), ts)).toBe(true);

      const d = create(DurationSchema, { seconds: -3n, nanos: -500_000_000 });
      expect(equals(DurationSchema, Duration.decode(Duration.encode(d, s), s), d)).toBe(true);

      const st = create(StructSchema, {
        fields: {
          name: { kind: { case: "stringValue", value: "zoë" } },
          n: { kind: { case: "numberValue", value: 1.25 } },
          ok: { kind: { case: "boolValue", value: true } },
          none: { kind: { case: "nullValue", value: 0 } },
          list: {
            kind: {
              case: "listValue",
              value: { values: [{ kind: { case: "numberValue", value: 1 } }] },
            },
          },
        },
      });
      expect(equals(StructSchema, Struct.decode(Struct.encode(st, s), s), st)).toBe(true);
    });
  }

  it("writes protobuf binary, canonical proto3 JSON, and MessagePack of that JSON", () => {
    const ts = timestampFromMs(1500);
    expect(Buffer.from(Timestamp.encode(ts, "protobuf")).toString("hex")).toBe(
      Buffer.from(toBinary(TimestampSchema, ts)).toString("hex"),
    );
    expect(Buffer.from(Timestamp.encode(ts, "json")).toString()).toBe('"1970-01-01T00:00:01.500Z"');
    // fixstr of 24 bytes, then the same string.
    expect(Buffer.from(Timestamp.encode(ts, "msgpack")).toString("hex")).toBe(
      `b8${Buffer.from("1970-01-01T00:00:01.500Z").toString("hex")}`,
    );
  });

  it("encodes an init object as well as a message", () => {
    const fromInit = Timestamp.encode({ seconds: 1n, nanos: 5 }, "protobuf");
    const fromMessage = Timestamp.encode(create(TimestampSchema, { seconds: 1n, nanos: 5 }), "protobuf");
    expect(Buffer.from(fromInit).toString("hex")).toBe("08011005");
    expect(Buffer.from(fromMessage).equals(Buffer.from(fromInit))).toBe(true);
    expect(Buffer.from(Timestamp.encode({}, "json")).toString()).toBe('"1970-01-01T00:00:00Z"');
  });

  it("keeps unknown fields in binary and ignores them in JSON, so old and new peers interoperate", () => {
    const SourceContext = protobufType(SourceContextSchema);
    // field 1 (file_name) = "a", then an unknown varint field 2 = 5.
    const withUnknown = Buffer.from("0a01611005", "hex");
    const msg = SourceContext.decode(withUnknown, "protobuf");
    expect(msg.fileName).toBe("a");
    expect(Buffer.from(SourceContext.encode(msg, "protobuf")).toString("hex")).toBe("0a01611005");

    const fromJson = SourceContext.decode(Buffer.from('{"fileName":"b","addedLater":1}'), "json");
    expect(fromJson.fileName).toBe("b");
  });

  it("refuses the raw serializer and unknown names as INVALID_ARGUMENT/UNSUPPORTED_SERIALIZER", () => {
    for (const s of ["raw", "xml"] as SerializerName[]) {
      for (const e of [
        caught(() => Timestamp.encode(timestampFromMs(0), s)),
        caught(() => Timestamp.decode(new Uint8Array(0), s)),
      ]) {
        expect(e.code).toBe(Code.INVALID_ARGUMENT);
        expect(e.reason).toBe("UNSUPPORTED_SERIALIZER");
      }
    }
  });

  it("turns garbage into INVALID_ARGUMENT/DECODE_FAILED", () => {
    const garbage: Array<[SerializerName, string]> = [
      ["protobuf", "ff"], // truncated varint tag
      ["protobuf", "08"], // field 1 tag without its value
      ["protobuf", "1a05"], // unknown length-delimited field 3 running past the end
      ["protobuf", "0f"], // wire type 7 does not exist
      ["json", "7b"], // "{"
      ["json", "22"], // unterminated string
      ["json", '"not a timestamp"'],
      ["json", ""],
      ["msgpack", "92"], // array header without elements
      ["msgpack", "2a"], // 42: a number is no Timestamp
      ["msgpack", "d66900000001a3616263"], // msgpackr structured-clone reference extension
    ];
    for (const [s, bytes] of garbage) {
      const body = /^[0-9a-f]*$/.test(bytes) ? Buffer.from(bytes, "hex") : Buffer.from(bytes);
      const e = caught(() => Timestamp.decode(body, s));
      expect(e.code, `${s} ${bytes}`).toBe(Code.INVALID_ARGUMENT);
      expect(e.reason).toBe("DECODE_FAILED");
      expect(e.rawMessage).toContain(s);
    }
  });

  it("reads MessagePack strictly, with 64-bit integers kept exact", () => {
    const Int64 = protobufType(Int64ValueSchema);
    // 2^53 + 1 as uint64: exact, where a double would round it
    expect(Int64.decode(Buffer.from("cf0020000000000001", "hex"), "msgpack").value).toBe(2n ** 53n + 1n);
    for (const h of [
      "91c1", // a nested 0xc1
      "d47300920102", // a msgpackr Set
      "d6ff00000001", // a timestamp extension is a Date, which is no proto3 JSON value
    ]) {
      const e = caught(() => Int64.decode(Buffer.from(h, "hex"), "msgpack"));
      expect(e.reason, h).toBe("DECODE_FAILED");
    }
  });

  it("decodes an empty protobuf body as the default message", () => {
    const ts = Timestamp.decode(new Uint8Array(0), "protobuf");
    expect(ts.seconds).toBe(0n);
    expect(ts.nanos).toBe(0);
  });
});

describe("rawBytes", () => {
  it("passes bytes through untouched, as the raw serializer", () => {
    const b = new Uint8Array([0, 1, 255]);
    expect(rawBytes.serializers).toEqual(["raw"]);
    expect(rawBytes.encode(b, "raw")).toBe(b);
    expect(rawBytes.decode(b, "raw")).toBe(b);
  });

  it("refuses every other serializer", () => {
    for (const s of ["protobuf", "json", "msgpack"] as const) {
      expect(caught(() => rawBytes.encode(new Uint8Array(0), s)).reason).toBe("UNSUPPORTED_SERIALIZER");
      expect(caught(() => rawBytes.decode(new Uint8Array(0), s)).reason).toBe("UNSUPPORTED_SERIALIZER");
    }
  });
});
