import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import { createMsgpackDecoder, encodeMsgpack } from "./msgpack.ts";

// Fixed seeds keep the suite deterministic; a small depth limit lets random input reach it.
const SEED = 0x57460007;
const RUNS = 1000;
const strict = createMsgpackDecoder({ maxDepth: 8 });
const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

/** The refusals the fuzzers provoked (the cause's message without its offset), to show their reach. */
const seen = new Set<string>();

/** Nodes (values and keys) and string/bin content of a decoded value. */
function weigh(v: unknown, acc = { nodes: 0, content: 0 }): { nodes: number; content: number } {
  acc.nodes++;
  if (typeof v === "string") acc.content += v.length;
  else if (v instanceof Uint8Array) acc.content += v.length;
  else if (Array.isArray(v)) for (const x of v) weigh(x, acc);
  else if (v !== null && typeof v === "object" && !(v instanceof Date)) {
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    for (const [, x] of Object.entries(v)) {
      acc.nodes++;
      weigh(x, acc);
    }
  }
  return acc;
}

/**
 * The fuzzing contract: a value or a WeftError INVALID_ARGUMENT/DECODE_FAILED, nothing else; and a
 * value is no bigger than its bytes (every value, key and content byte costs at least one byte).
 */
function check(bytes: Uint8Array): void {
  let value: unknown;
  try {
    value = strict.decode(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    expect((e as WeftError).code).toBe(Code.INVALID_ARGUMENT);
    expect((e as WeftError).reason).toBe(Reason.DECODE_FAILED);
    seen.add(((e as WeftError).cause as Error).message.replace(/ at byte \d+$/, ""));
    return;
  }
  const { nodes, content } = weigh(value);
  expect(nodes).toBeLessThanOrEqual(bytes.length);
  expect(content).toBeLessThanOrEqual(bytes.length);
}

/** Bytes that start MessagePack constructs, so random input builds structures, not only scalars. */
const token = fc.oneof(
  fc.constantFrom(0x80, 0x81, 0x82, 0x90, 0x91, 0x92, 0xa1, 0xa3, 0xc1, 0xc4, 0xc7, 0xd4, 0xd6, 0xd7),
  fc.constantFrom(0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xcf, 0xd3, 0xca, 0xcb, 0xff, 0xc0, 0x01, 0x00),
  fc.nat(255),
);

const key = fc
  .oneof(fc.string({ maxLength: 40, size: "max" }), fc.string({ unit: "binary", maxLength: 40 }))
  .filter((k) => k !== "__proto__");
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double().map((d) => (Object.is(d, -0) ? 0 : d)), // -0 travels as the integer 0
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.uint8Array({ maxLength: 20 }),
  fc.date({ noInvalidDate: true }),
);
const { plain } = fc.letrec((tie) => ({
  plain: fc.oneof(
    { depthSize: "small", maxDepth: 6 },
    leaf,
    fc.array(tie("plain"), { maxLength: 5 }),
    fc.dictionary(key, tie("plain"), { maxKeys: 5, noNullPrototype: true }),
  ),
}));

const mutation = fc.record({
  at: fc.nat(),
  byte: fc.nat(255),
  kind: fc.constantFrom("set", "insert", "cut"),
});

function mutate(bytes: Uint8Array, edits: { at: number; byte: number; kind: string }[]): Uint8Array {
  let out = Buffer.from(bytes);
  for (const { at, byte, kind } of edits) {
    const i = out.length === 0 ? 0 : at % out.length;
    if (kind === "set" && out.length > 0) out[i] = byte;
    else if (kind === "insert")
      out = Buffer.concat([out.subarray(0, i), Buffer.from([byte]), out.subarray(i)]);
    else out = out.subarray(0, i);
  }
  return out;
}

describe("strict MessagePack decoding under fuzzing", () => {
  afterAll(() => {
    // Nothing reached Object.prototype.
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeNames);
  });

  it("arbitrary bytes give a value or a typed error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => check(bytes)),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("sequences of MessagePack lead bytes give a value or a typed error", () => {
    fc.assert(
      fc.property(fc.array(token, { maxLength: 64 }), (bytes) => check(new Uint8Array(bytes))),
      { seed: SEED + 1, numRuns: RUNS * 4 },
    );
  });

  it("nested containers around MessagePack lead bytes give a value or a typed error", () => {
    const open = fc.constantFrom([0x91], [0x92], [0x81, 0xa0], [0x82, 0x01], [0xdc, 0x00, 0x01]);
    fc.assert(
      fc.property(fc.array(open, { maxLength: 12 }), fc.array(token, { maxLength: 16 }), (opens, rest) =>
        check(new Uint8Array([...opens.flat(), ...rest])),
      ),
      { seed: SEED + 4, numRuns: RUNS },
    );
  });

  it("mutated valid messages give a value or a typed error", () => {
    fc.assert(
      fc.property(plain, fc.array(mutation, { minLength: 1, maxLength: 4 }), (value, edits) =>
        check(mutate(encodeMsgpack(value), edits)),
      ),
      { seed: SEED + 2, numRuns: RUNS },
    );
  });

  it("reached each kind of refusal", () => {
    for (const kind of [
      "reserved byte 0xc1",
      "unexpected end of data",
      "extension type",
      "nesting deeper than",
      "map key is neither a string nor an integer",
      "string is not valid UTF-8",
      "duplicate map key",
      "timestamp out of range",
      "trailing bytes",
    ]) {
      expect(
        [...seen].some((s) => s.includes(kind)),
        kind,
      ).toBe(true);
    }
  });

  it("every plain value round-trips", () => {
    const deep = createMsgpackDecoder();
    fc.assert(
      fc.property(plain, (value) => {
        expect(deep.decode(encodeMsgpack(value))).toEqual(value);
      }),
      { seed: SEED + 3, numRuns: RUNS },
    );
  });
});
