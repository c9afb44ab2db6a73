import { addExtension, Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import { createMsgpackDecoder, encodeMsgpack, MSGPACK_MAX_DEPTH } from "./msgpack.ts";

const strict = createMsgpackDecoder();
const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ""), "hex");
const decode = (h: string) => strict.decode(hex(h));

/** The refusal for `bytes`, checked to be INVALID_ARGUMENT/DECODE_FAILED with an Error as cause. */
function refusal(bytes: Uint8Array, decoder = strict): string {
  try {
    decoder.decode(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    const err = e as WeftError;
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.reason).toBe(Reason.DECODE_FAILED);
    expect(err.cause).toBeInstanceOf(Error);
    expect(err.rawMessage).toContain("msgpack");
    return (err.cause as Error).message;
  }
  throw new Error(`expected ${Buffer.from(bytes).toString("hex")} to be refused`);
}
const refused = (h: string) => refusal(hex(h));

describe("strict MessagePack decoding: what is accepted", () => {
  it("reads every plain type in every width", () => {
    const cases: Array<[string, unknown]> = [
      ["c0", null],
      ["c2", false],
      ["c3", true],
      ["00", 0],
      ["7f", 127],
      ["ff", -1],
      ["e0", -32],
      ["ccff", 255],
      ["cdffff", 65535],
      ["ceffffffff", 4294967295],
      ["cf001fffffffffffff", Number.MAX_SAFE_INTEGER],
      ["d080", -128],
      ["d18000", -32768],
      ["d280000000", -2147483648],
      ["d3ffe0000000000001", Number.MIN_SAFE_INTEGER],
      ["ca3fc00000", 1.5],
      ["cbbff8000000000000", -1.5],
      ["cb7ff8000000000000", Number.NaN],
      ["cb7ff0000000000000", Number.POSITIVE_INFINITY],
      ["a0", ""],
      ["a3616263", "abc"],
      ["d903616263", "abc"],
      ["da0003616263", "abc"],
      ["db00000003616263", "abc"],
      ["a6e298833f3f21", "☃??!"],
      ["90", []],
      ["9301a162c0", [1, "b", null]],
      ["dc000101", [1]],
      ["dd0000000101", [1]],
      ["80", {}],
      ["82a16101a16292c3c2", { a: 1, b: [true, false] }],
      ["de0001a16101", { a: 1 }],
      ["df00000001a16101", { a: 1 }],
    ];
    for (const [h, v] of cases) expect(decode(h), h).toEqual(v);
  });

  it("reads bin as a fresh Uint8Array that does not alias the input", () => {
    const input = hex("c403010203");
    const out = strict.decode(input) as Uint8Array;
    expect(out).toEqual(new Uint8Array([1, 2, 3]));
    expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
    input[2] = 9;
    expect(out[0]).toBe(1);
    expect(decode("c5000100")).toEqual(new Uint8Array([0]));
    expect(decode("c60000000100")).toEqual(new Uint8Array([0]));
  });

  it("decodes strings of every length, ASCII and not", () => {
    for (const s of [
      "",
      "a",
      "é",
      "abcdefghijklmnop",
      "abcdefghijklmnopq",
      "x".repeat(300),
      "ü".repeat(20),
    ]) {
      expect(strict.decode(encodeMsgpack(s))).toBe(s);
    }
  });

  it("decodes map keys of every length, ASCII and not, the same on every read", () => {
    for (const n of [0, 1, 15, 16, 17, 24, 31, 32, 300]) {
      for (const c of ["k", "é"]) {
        const value = { [c.repeat(n)]: n, [`${c.repeat(n)}!`]: true };
        expect(strict.decode(encodeMsgpack(value)), `${c} × ${n}`).toEqual(value);
        expect(strict.decode(encodeMsgpack(value))).toEqual(value);
      }
    }
    expect(decode(`81 bf ${"61".repeat(31)} 01`)).toEqual({ ["a".repeat(31)]: 1 });
  });

  it("rounds 64-bit integers beyond 2^53 by default, keeps them exact with int64: bigint", () => {
    const big = createMsgpackDecoder({ int64: "bigint" });
    expect(decode("cf0020000000000001")).toBe(2 ** 53);
    expect(big.decode(hex("cf0020000000000001"))).toBe(2n ** 53n + 1n);
    expect(big.decode(hex("d3ffdfffffffffffff"))).toBe(-(2n ** 53n) - 1n);
    expect(big.decode(hex("cfffffffffffffffff"))).toBe(2n ** 64n - 1n);
    // Within the safe range both give numbers.
    expect(big.decode(hex("cf0000000000000005"))).toBe(5);
    expect(big.decode(hex("d3fffffffffffffffb"))).toBe(-5);
  });

  it("reads the timestamp extension (-1) in its three sizes as a Date", () => {
    expect(decode("d6ff00000001")).toEqual(new Date(1000));
    // timestamp 64: 30 bits of nanoseconds (500 ms), 34 bits of seconds (2^32 + 1)
    const ns = 500_000_000;
    const t64 = Buffer.alloc(10);
    t64.writeUInt8(0xd7, 0);
    t64.writeUInt8(0xff, 1);
    t64.writeUInt32BE(((ns << 2) | 1) >>> 0, 2);
    t64.writeUInt32BE(1, 6);
    expect(strict.decode(t64)).toEqual(new Date((2 ** 32 + 1) * 1000 + 500));
    // timestamp 96: nanoseconds then signed 64-bit seconds (-2 s + 0.25 s)
    expect(decode("c70cff 0ee6b280 fffffffffffffffe")).toEqual(new Date(-1750));
    // sub-millisecond nanoseconds are truncated
    expect(decode("c70cff 000f423f 0000000000000000")).toEqual(new Date(0));
    // msgpackr's own Dates come back equal
    for (const d of [new Date(0), new Date(1_700_000_000_123), new Date(-1), new Date(8.64e15)]) {
      expect(strict.decode(encodeMsgpack(d))).toEqual(d);
    }
  });

  it("turns integer map keys into their decimal strings", () => {
    expect(decode("8301a16111a162d0f6a163")).toEqual({ "1": "a", "17": "b", "-10": "c" });
    expect(decode("81cfffffffffffffffffc0")).toEqual({ "18446744073709551615": null });
    expect(decode("81d38000000000000000c0")).toEqual({ "-9223372036854775808": null });
  });

  it("keeps keys that merely look special as ordinary own properties", () => {
    const v = decode(
      "83 ab636f6e7374727563746f72 01 a9707 26f746f74797065 02 a8746f537472696e67 03",
    ) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["constructor", "prototype", "toString"]);
    expect(v.constructor).toBe(1);
  });

  it("decodes a view into a larger buffer, and recovers after a refusal", () => {
    const backing = hex("ffff 81a16101 ffff");
    expect(strict.decode(backing.subarray(2, 6))).toEqual({ a: 1 });
    refused("c1");
    expect(decode("a3616263")).toBe("abc");
  });

  it("encodes undefined as nil and plain values as plain MessagePack", () => {
    expect(Buffer.from(encodeMsgpack({ a: undefined, b: [undefined] })).toString("hex")).toBe(
      "de0002a161c0a16291c0",
    );
    expect(strict.decode(encodeMsgpack({ a: undefined }))).toEqual({ a: null });
  });
});

describe("strict MessagePack decoding: what is refused", () => {
  it("refuses every extension msgpackr writes or reads beyond the timestamp", () => {
    const rich = new Packr({ moreTypes: true, useRecords: false });
    const records = new Packr({ useRecords: true });
    const bundled = new Packr({ bundleStrings: true, useRecords: false });
    const clones = new Packr({ structuredClone: true, useRecords: false });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const samples: Array<[string, Uint8Array]> = [
      ["Error (0x65)", rich.pack(new TypeError("boom"))],
      ["Set (0x73)", rich.pack(new Set([1]))],
      ["RegExp (0x78)", rich.pack(/a+/g)],
      ["typed array (0x74)", rich.pack(new Float64Array([1]))],
      ["ArrayBuffer (0x74)", rich.pack(new ArrayBuffer(2))],
      ["BigInt (0x42)", rich.pack(2n ** 70n)],
      ["undefined (0x00)", hex("d40000")],
      ["record definition (0x72)", records.pack([{ a: 1 }, { a: 2 }])],
      ["bundled strings (0x62)", bundled.pack({ s: "a long enough string to bundle", t: "another one" })],
      ["structured-clone reference (0x69/0x70)", clones.pack(cyclic)],
    ];
    for (const [name, bytes] of samples) expect(refusal(bytes), name).toMatch(/extension type -?\d+/);
  });

  it("refuses every extension type but -1, in every container size", () => {
    for (let type = -128; type < 128; type++) {
      if (type === -1) continue;
      const t = (type & 0xff).toString(16).padStart(2, "0");
      expect(refused(`d4${t}00`)).toContain(`extension type ${type} `);
      expect(refused(`d8${t}${"00".repeat(16)}`)).toContain(`extension type ${type} `);
      expect(refused(`c701${t}00`)).toContain(`extension type ${type} `);
    }
  });

  it("refuses extensions registered with msgpackr by anyone in the process", () => {
    class Point {
      readonly x: number;
      constructor(x: number) {
        this.x = x;
      }
    }
    addExtension({ Class: Point, type: 42, write: (p: Point) => p.x, read: (x: number) => new Point(x) });
    expect(refusal(new Packr({ useRecords: false }).pack(new Point(1)))).toContain("extension type 42");
  });

  it("refuses timestamps of other sizes or out of range", () => {
    expect(refused("d4ff00")).toContain("timestamp of 1 bytes");
    expect(refused("d5ff0000")).toContain("timestamp of 2 bytes");
    expect(refused(`d8ff${"00".repeat(16)}`)).toContain("timestamp of 16 bytes");
    // nanoseconds of 10^9 in timestamp 96 and in timestamp 64
    expect(refused("c70cff 3b9aca00 0000000000000000")).toContain("timestamp out of range");
    expect(refused("d7ff ee6b2800 00000000")).toContain("timestamp out of range");
    // 2^62 seconds: far beyond a Date
    expect(refused("c70cff 00000000 4000000000000000")).toContain("timestamp out of range");
  });

  it("refuses the reserved byte 0xc1 wherever it appears", () => {
    for (const h of ["c1", "91c1", "9191919191c1", "81a161c1", "81c1c0", "93c0c0c1", "82a16100a16291c1"]) {
      expect(refused(h), h).toContain("reserved byte 0xc1");
    }
    expect(refused("9191919191c1")).toContain("at byte 5");
  });

  it("refuses nesting deeper than the limit, without exhausting the stack", () => {
    const nested = (open: string, depth: number, leaf: string) => hex(open.repeat(depth) + leaf);
    expect(strict.decode(nested("91", MSGPACK_MAX_DEPTH, "c0"))).toBeInstanceOf(Array);
    expect(refusal(nested("91", MSGPACK_MAX_DEPTH + 1, "c0"))).toContain(
      `nesting deeper than ${MSGPACK_MAX_DEPTH}`,
    );
    expect(strict.decode(nested("81a0", MSGPACK_MAX_DEPTH, "c0"))).toBeInstanceOf(Object);
    expect(refusal(nested("81a0", MSGPACK_MAX_DEPTH + 1, "c0"))).toContain("nesting deeper");
    // A million levels: refused at the limit, not by a stack overflow.
    expect(refusal(nested("91", 1_000_000, "c0"))).toContain("nesting deeper");
    const shallow = createMsgpackDecoder({ maxDepth: 2 });
    expect(shallow.decode(hex("9191c0"))).toEqual([[null]]);
    expect(refusal(hex("919191c0"), shallow)).toContain("nesting deeper than 2");
  });

  it("checks declared lengths against the remaining bytes before allocating", () => {
    expect(refused("ddffffffff")).toBe(
      "array of 4294967295 elements needs 4294967295 bytes, 0 remain at byte 5",
    );
    expect(refused("dfffffffff")).toContain("map of 4294967295 entries needs 8589934590 bytes, 0 remain");
    expect(refused("dbffffffff61")).toContain("string needs 4294967295 bytes, 1 remain");
    expect(refused("c6ffffffff")).toContain("bin needs 4294967295 bytes");
    expect(refused("c9ffffffffff")).toContain("extension needs 4294967296 bytes");
    // A count the bytes could almost hold: still refused up front, by the same rule.
    expect(refused("dc0004c0c0c0")).toContain("array of 4 elements needs 4 bytes, 3 remain");
    expect(refused("de0002a161c0")).toContain("map of 2 entries needs 4 bytes, 3 remain");
  });

  it("refuses __proto__ keys, so nothing can reach a prototype", () => {
    const proto = "a95f5f70726f746f5f5f"; // "__proto__"
    expect(refused(`81${proto}81a178c3`)).toContain("map key __proto__");
    expect(refused(`91 81${proto}c0`)).toContain("map key __proto__");
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("x");
  });

  it("refuses map keys that are neither strings nor integers, and duplicate keys", () => {
    for (const key of [
      "c0",
      "c3",
      "ca3f800000",
      "cb3ff0000000000000",
      "c40161",
      "90",
      "80",
      "d6ff00000000",
    ]) {
      expect(refused(`81${key}01`), key).toContain("map key is neither a string nor an integer");
    }
    expect(refused("82a16101a16102")).toContain('duplicate map key "a"');
    expect(refused("8201c0a131c0")).toContain('duplicate map key "1"');
  });

  it("refuses strings that are not valid UTF-8, short or long", () => {
    for (const h of ["a1ff", "a2c0af", "a3eda080", "a4f4908080", `d920${"61".repeat(31)}ff`]) {
      expect(refused(h), h).toContain("not valid UTF-8");
    }
  });

  it("refuses empty, truncated and over-long input", () => {
    expect(refused("")).toContain("unexpected end of data at byte 0");
    expect(refused("92 cd0001")).toContain("unexpected end of data at byte 4");
    expect(refused("cd00")).toContain("needs 2 bytes, 1 remain");
    expect(refused("cb000000")).toContain("float64 needs 8 bytes");
    expect(refused("cf00")).toContain("int64 needs 8 bytes");
    expect(refused("0102")).toBe("1 trailing bytes at byte 1");
  });

  it("refuses bad options as ConfigError", () => {
    for (const maxDepth of [0, -1, 1.5, 1001, Number.NaN]) {
      expect(() => createMsgpackDecoder({ maxDepth })).toThrow(ConfigError);
    }
    expect(() => createMsgpackDecoder({ int64: "string" as never })).toThrow(/invalid option "int64"/);
  });
});
