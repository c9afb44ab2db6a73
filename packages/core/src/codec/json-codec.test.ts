import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { messageType } from "./json-codec.ts";
import type { CodecType, MessageCodec } from "./message-codec.ts";
import type { SerializerName } from "./serializer.ts";
import type { StandardSchemaV1 } from "./standard-schema.ts";

function caught(fn: () => unknown): WeftError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    return e as WeftError;
  }
  throw new Error("expected a throw");
}

const values: unknown[] = [
  null,
  true,
  0,
  -1,
  2 ** 53 - 1,
  -(2 ** 31),
  1.5,
  "",
  "naïve ☃ 🧵",
  [],
  [1, "two", null, [3]],
  {},
  { sku: "A-1", qty: 3, tags: ["x"], nested: { deep: { ok: false } } },
];

describe("messageType", () => {
  const Any = messageType<unknown>();

  it("offers MessagePack first, then JSON", () => {
    expect(Any.serializers).toEqual(["msgpack", "json"]);
  });

  for (const serializer of ["json", "msgpack"] as const) {
    it(`round-trips JSON-like values as ${serializer}`, () => {
      for (const v of values) expect(Any.decode(Any.encode(v, serializer), serializer)).toEqual(v);
    });
  }

  it("writes JSON exactly as JSON.stringify, in UTF-8", () => {
    const v = { b: 1, a: ["é"] };
    expect(Buffer.from(Any.encode(v, "json")).toString("utf8")).toBe(JSON.stringify(v));
  });

  it("writes standard MessagePack, readable by any MessagePack library", () => {
    // msgpackr writes maps as map16 (0xde + u16 count) whatever their size: valid, if not minimal.
    expect(Buffer.from(Any.encode({ n: 1 }, "msgpack")).toString("hex")).toBe("de0001a16e01");
    // ...and reads the minimal fixmap form other libraries write.
    expect(Any.decode(Buffer.from("81a16e01", "hex"), "msgpack")).toEqual({ n: 1 });
    expect(Buffer.from(Any.encode([1, "a", null, true], "msgpack")).toString("hex")).toBe("9401a161c0c3");
  });

  it("encodes undefined as JSON null and decodes an empty body as undefined", () => {
    expect(Buffer.from(Any.encode(undefined, "json")).toString()).toBe("null");
    expect(Any.decode(new Uint8Array(0), "json")).toBeUndefined();
    expect(Any.decode(new Uint8Array(0), "msgpack")).toBeUndefined();
  });

  it("decodes a view into a larger buffer", () => {
    const bytes = Any.encode({ a: 1 }, "msgpack");
    const backing = new Uint8Array(bytes.length + 6);
    backing.set(bytes, 3);
    expect(Any.decode(backing.subarray(3, 3 + bytes.length), "msgpack")).toEqual({ a: 1 });
  });

  it("refuses serializers it does not offer, as INVALID_ARGUMENT/UNSUPPORTED_SERIALIZER", () => {
    const JsonOnly = messageType<unknown>({ serializers: ["json"] });
    expect(JsonOnly.serializers).toEqual(["json"]);
    for (const s of ["msgpack", "protobuf", "raw", "xml"]) {
      for (const e of [
        caught(() => JsonOnly.encode(1, s as SerializerName)),
        caught(() => JsonOnly.decode(new Uint8Array([0x31]), s as SerializerName)),
      ]) {
        expect(e.code).toBe(Code.INVALID_ARGUMENT);
        expect(e.reason).toBe("UNSUPPORTED_SERIALIZER");
        expect(e.rawMessage).toContain(s);
      }
    }
    for (const s of ["protobuf", "raw"] as const) {
      expect(caught(() => Any.encode(1, s)).reason).toBe("UNSUPPORTED_SERIALIZER");
      expect(caught(() => Any.decode(new Uint8Array([1]), s)).reason).toBe("UNSUPPORTED_SERIALIZER");
    }
  });

  it("turns garbage into INVALID_ARGUMENT/DECODE_FAILED with the parser's error as cause", () => {
    const garbage: Array<[SerializerName, number[]]> = [
      ["json", [0x7b]], // "{"
      ["json", [0x6e, 0x6f, 0x70, 0x65]], // "nope"
      ["json", [0x22, 0xff, 0x22]], // invalid UTF-8 inside a string
      ["msgpack", [0x92, 0x01]], // array of 2 with 1 element
      ["msgpack", [0xd9]], // str8 without its length
      ["msgpack", [0x01, 0x02]], // trailing bytes
      ["msgpack", [0xc1]], // the byte MessagePack never uses
      // msgpackr's structured-clone references: {a:1, self: <pointer to itself>}, a cyclic graph
      ["msgpack", [...Buffer.from("d66900000001d4724092a161a473656c6601d67000000001", "hex")]],
    ];
    for (const [s, bytes] of garbage) {
      const e = caught(() => Any.decode(new Uint8Array(bytes), s));
      expect(e.code, `${s} ${bytes}`).toBe(Code.INVALID_ARGUMENT);
      expect(e.reason).toBe("DECODE_FAILED");
      expect(e.rawMessage).toContain(s);
      expect(e.cause).toBeInstanceOf(Error);
    }
  });
});

describe("messageType decodes MessagePack strictly", () => {
  const Any = messageType<unknown>();

  it("refuses msgpackr's extensions, a nested 0xc1 and __proto__ keys as DECODE_FAILED", () => {
    const bodies = [
      "91d4650093a54572726f72a178c0", // [Error("x")] as msgpackr writes it
      "81a173d47300920102", // {s: Set {1, 2}}
      "d4780092a3612b62a0", // /a+b/
      "929101c1", // [[1], 0xc1]
      "81a95f5f70726f746f5f5f81a178c3", // {"__proto__": {x: true}}
    ];
    for (const h of bodies) {
      const e = caught(() => Any.decode(Buffer.from(h, "hex"), "msgpack"));
      expect(e.code, h).toBe(Code.INVALID_ARGUMENT);
      expect(e.reason).toBe("DECODE_FAILED");
    }
    expect(({} as { x?: unknown }).x).toBeUndefined();
  });

  it("keeps Dates, and sends undefined as null", () => {
    const d = new Date(1_700_000_000_123);
    expect(Any.decode(Any.encode({ d, u: undefined }, "msgpack"), "msgpack")).toEqual({ d, u: null });
  });
});

describe("messageType with a Standard Schema (zod)", () => {
  const Item = z.object({
    sku: z.string().min(1),
    qty: z.number().int().min(1),
    tags: z.array(z.string()).default([]),
  });
  const Items = messageType({ schema: Item });

  it("infers the message type from the schema's output", () => {
    expectTypeOf(Items).toEqualTypeOf<MessageCodec<{ sku: string; qty: number; tags: string[] }>>();
    expectTypeOf<CodecType<typeof Items>>().toEqualTypeOf<{ sku: string; qty: number; tags: string[] }>();
  });

  it("passes valid messages, giving the handler the schema's output", () => {
    for (const s of ["json", "msgpack"] as const) {
      expect(Items.decode(Items.encode({ sku: "A", qty: 2, tags: [] }, s), s)).toEqual({
        sku: "A",
        qty: 2,
        tags: [],
      });
      // The default fills in what the sender left out.
      expect(Items.decode(Buffer.from('{"sku":"A","qty":2}'), "json")).toEqual({
        sku: "A",
        qty: 2,
        tags: [],
      });
    }
  });

  it("applies transforms", () => {
    const Len = messageType({ schema: z.string().transform((s) => s.length) });
    expectTypeOf(Len).toEqualTypeOf<MessageCodec<number>>();
    expect(Len.decode(Buffer.from('"abcd"'), "json")).toBe(4);
  });

  it("rejects invalid messages as INVALID_ARGUMENT/VALIDATION_FAILED with the issues as details", () => {
    const e = caught(() => Items.decode(Buffer.from('{"sku":"","qty":1.5,"tags":[1]}'), "json"));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.reason).toBe("VALIDATION_FAILED");
    expect(e.details.length).toBe(3);
    for (const d of e.details) expect(d.type).toBe("weft.ValidationIssue");
    const paths = e.details.map((d) => (d.value as { path: string }).path);
    expect(paths).toEqual(["sku", "qty", "tags.0"]);
    for (const d of e.details) expect(typeof (d.value as { message: string }).message).toBe("string");
    expect(e.rawMessage).toMatch(/^validation failed at "sku": /);
  });

  it("rejects a wrong top-level type, with no path", () => {
    const e = caught(() => Items.decode(Items.encode(42 as never, "msgpack"), "msgpack"));
    expect(e.reason).toBe("VALIDATION_FAILED");
    expect((e.details[0]!.value as { path: string }).path).toBe("");
    expect(e.rawMessage).toMatch(/^validation failed: /);
  });

  it("validates only on decode: encoding trusts the sender's types", () => {
    const bytes = Items.encode({ sku: "", qty: 0, tags: [] }, "json");
    expect(Buffer.from(bytes).toString()).toBe('{"sku":"","qty":0,"tags":[]}');
  });

  it("refuses asynchronous schemas as INTERNAL/ASYNC_SCHEMA_UNSUPPORTED", () => {
    const Async = messageType({ schema: z.string().refine(async () => true) });
    const e = caught(() => Async.decode(Buffer.from('"x"'), "json"));
    expect(e.code).toBe(Code.INTERNAL);
    expect(e.reason).toBe("ASYNC_SCHEMA_UNSUPPORTED");
  });

  it("works with any Standard Schema, not only zod", () => {
    const even: StandardSchemaV1<unknown, number> = {
      "~standard": {
        version: 1,
        vendor: "test",
        validate: (v) =>
          typeof v === "number" && v % 2 === 0
            ? { value: v }
            : { issues: [{ message: "not even", path: [{ key: "n" }, 0, Symbol.for("s")] }] },
      },
    };
    const Even = messageType({ schema: even, serializers: ["json"] });
    expect(Even.decode(Buffer.from("4"), "json")).toBe(4);
    const e = caught(() => Even.decode(Buffer.from("3"), "json"));
    expect(e.details).toEqual([
      { type: "weft.ValidationIssue", value: { message: "not even", path: "n.0.Symbol(s)" } },
    ]);
  });

  it("does not validate a body that fails to parse: that is DECODE_FAILED", () => {
    expect(caught(() => Items.decode(Buffer.from("{"), "json")).reason).toBe("DECODE_FAILED");
  });
});
