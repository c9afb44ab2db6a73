import { describe, expect, it } from "vitest";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import { Metadata } from "../metadata/metadata.ts";
import vectors from "./golden-vectors.json" with { type: "json" };
import {
  decodeCredit,
  decodeGoaway,
  decodeStatus,
  encodeCredit,
  encodeGoaway,
  encodeStatus,
} from "./status.ts";

const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
const vector = (name: string) => vectors.find((v) => v.name === name)!;

describe("status (END body)", () => {
  it("is empty for OK", () => {
    expect(encodeStatus(undefined).length).toBe(0);
    expect(encodeStatus(new WeftError(Code.OK, "fine")).length).toBe(0);
    expect(decodeStatus(new Uint8Array(0), new Metadata())).toBeUndefined();
  });

  it("writes the keys in the documented order and leaves out empty reason and details", () => {
    expect(text(encodeStatus(new WeftError(Code.NOT_FOUND, "gone")))).toBe('{"code":5,"message":"gone"}');
    expect(text(encodeStatus(new WeftError(Code.ABORTED, "", { reason: "CONFLICT" })))).toBe(
      '{"code":10,"reason":"CONFLICT","message":""}',
    );
  });

  it("produces the body of the end-error golden vector", () => {
    const error = new WeftError(Code.NOT_FOUND, "no order 42", {
      reason: "ORDER_NOT_FOUND",
      details: [
        { type: "example.Hint", value: { retry: false } },
        { type: "example.Raw", value: new Uint8Array([1, 2]) },
      ],
    });
    expect(Buffer.from(encodeStatus(error)).toString("hex")).toBe(vector("end-error").frame.bodyHex);
  });

  it("round-trips code, reason, message, details (bytes and JSON) and trailers", () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const error = new WeftError(Code.FAILED_PRECONDITION, "stock is ☃ low", {
      reason: "OUT_OF_STOCK",
      details: [
        { type: "google.rpc.PreconditionFailure", value: bytes.subarray(1, 4) },
        { type: "shop.v1.Hint", value: { sku: "A-1", left: 0, tags: ["x", null], nested: { ok: true } } },
        { type: "shop.v1.Null", value: null },
      ],
    });
    const trailers = new Metadata({ "x-node": "a1" });
    const back = decodeStatus(encodeStatus(error), trailers)!;
    expect(back).toBeInstanceOf(WeftError);
    expect(back.code).toBe(Code.FAILED_PRECONDITION);
    expect(back.reason).toBe("OUT_OF_STOCK");
    expect(back.rawMessage).toBe("stock is ☃ low");
    expect(back.message).toBe("[FAILED_PRECONDITION] stock is ☃ low");
    expect(back.details).toHaveLength(3);
    expect(back.details[0]!.type).toBe("google.rpc.PreconditionFailure");
    expect(back.details[0]!.value).toBeInstanceOf(Uint8Array);
    expect([...(back.details[0]!.value as Uint8Array)]).toEqual([1, 2, 250]);
    expect(back.details[1]).toEqual({
      type: "shop.v1.Hint",
      value: { sku: "A-1", left: 0, tags: ["x", null], nested: { ok: true } },
    });
    expect(back.details[2]).toEqual({ type: "shop.v1.Null", value: null });
    expect(back.metadata.get("x-node")).toBe("a1");
    // The trailers are copied, not shared.
    trailers.set("x-node", "b2");
    expect(back.metadata.get("x-node")).toBe("a1");
  });

  it("encodes an error answered again and again once, and a different one anew", () => {
    const shared = new WeftError(Code.RESOURCE_EXHAUSTED, "shed", { reason: "OVERLOADED" });
    const first = encodeStatus(shared);
    expect(encodeStatus(shared)).toBe(first);
    const other = new WeftError(Code.RESOURCE_EXHAUSTED, "shed", { reason: "OVERLOADED" });
    expect(encodeStatus(other)).not.toBe(first);
    expect(text(encodeStatus(other))).toBe(text(first));
    expect(text(encodeStatus(shared))).toBe('{"code":8,"reason":"OVERLOADED","message":"shed"}');
  });

  it("decodes a view into a larger buffer", () => {
    const body = encodeStatus(new WeftError(Code.UNAVAILABLE, "busy", { reason: "REFUSED_STREAM" }));
    const backing = new Uint8Array(body.length + 8);
    backing.set(body, 4);
    const back = decodeStatus(backing.subarray(4, 4 + body.length), new Metadata())!;
    expect(back.code).toBe(Code.UNAVAILABLE);
    expect(back.reason).toBe("REFUSED_STREAM");
  });

  it("tolerates missing or odd fields from other peers", () => {
    const parse = (json: string) => decodeStatus(Buffer.from(json), new Metadata());
    expect(parse('{"code":0,"message":"ignored"}')).toBeUndefined();
    const noCode = parse('{"message":"m"}')!;
    expect(noCode.code).toBe(Code.UNKNOWN);
    expect(noCode.rawMessage).toBe("m");
    expect(noCode.reason).toBe("");
    expect(parse('{"code":99}')!.code).toBe(Code.UNKNOWN);
    expect(parse('{"code":3.5}')!.code).toBe(Code.UNKNOWN);
    expect(parse('{"code":"5"}')!.code).toBe(Code.UNKNOWN);
    const odd = parse(
      '{"code":7,"message":42,"reason":[],"details":[null,{"json":1},{"type":"t"},"x"],"extra":1}',
    )!;
    expect(odd.code).toBe(Code.PERMISSION_DENIED);
    expect(odd.rawMessage).toBe("");
    expect(odd.reason).toBe("");
    expect(odd.details).toEqual([{ type: "t", value: null }]);
    expect(parse('{"code":7,"details":{"type":"t"}}')!.details).toEqual([]);
  });

  it("turns a body that is not a status object into INTERNAL/MALFORMED_STATUS", () => {
    for (const body of ["not json", "{", "null", "5", '"str"', "[]", "true"]) {
      const e = decodeStatus(Buffer.from(body), new Metadata());
      expect(e, body).toBeInstanceOf(WeftError);
      expect(e!.code).toBe(Code.INTERNAL);
      expect(e!.reason).toBe("MALFORMED_STATUS");
    }
  });
});

describe("GOAWAY body", () => {
  it("round-trips", () => {
    const body = encodeGoaway(0xfffffffe, Code.UNAVAILABLE, "draining ☃");
    expect(decodeGoaway(body)).toEqual({
      lastStreamId: 0xfffffffe,
      code: Code.UNAVAILABLE,
      message: "draining ☃",
    });
  });

  it("matches the goaway golden vector", () => {
    const body = encodeGoaway(9, Code.UNAVAILABLE, "shutting down");
    expect(Buffer.from(body).toString("hex")).toBe(vector("goaway").frame.bodyHex);
  });

  it("allows an empty message", () => {
    const body = encodeGoaway(0, Code.OK, "");
    expect(body.length).toBe(8);
    expect(decodeGoaway(body)).toEqual({ lastStreamId: 0, code: Code.OK, message: "" });
  });

  it("reads a short body as 'stop opening calls', keeping those in flight", () => {
    expect(decodeGoaway(new Uint8Array(3))).toEqual({
      lastStreamId: 0xffffffff,
      code: Code.UNAVAILABLE,
      message: "",
    });
  });
});

describe("CREDIT body", () => {
  it("round-trips the whole u32 range", () => {
    for (const n of [0, 1, 65536, 1_048_576, 0x7fffffff, 0x80000000, 0xffffffff]) {
      const body = encodeCredit(n);
      expect(body.length).toBe(4);
      expect(decodeCredit(body)).toBe(n);
    }
  });

  it("matches the credit golden vector", () => {
    expect(Buffer.from(encodeCredit(65536)).toString("hex")).toBe(vector("credit").frame.bodyHex);
  });

  it("clamps what a u32 cannot carry", () => {
    expect(decodeCredit(encodeCredit(2 ** 40))).toBe(0xffffffff);
    expect(decodeCredit(encodeCredit(-1))).toBe(0);
    expect(decodeCredit(encodeCredit(Number.NaN))).toBe(0);
    expect(decodeCredit(encodeCredit(10.9))).toBe(10);
  });

  it("reads a short body as no credit", () => {
    expect(decodeCredit(new Uint8Array([1, 2, 3]))).toBe(0);
  });

  it("reads a view into a larger buffer", () => {
    const b = new Uint8Array([9, 0, 0, 1, 0, 9]);
    expect(decodeCredit(b.subarray(1, 5))).toBe(256);
  });
});
