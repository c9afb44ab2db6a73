import { Code, Metadata, WeftError } from "@weft/core";
import { encodeStatus } from "@weft/core/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  codeFromHttpStatus,
  codeFromRstCode,
  decodeDetails,
  decodeGrpcMessage,
  encodeGrpcMessage,
  encodeGrpcTimeout,
  encodeJsonDetails,
  encodeStatusDetails,
  errorFromStatus,
  parseGrpcTimeout,
} from "./status.ts";

describe("grpc-message", () => {
  it("percent-encodes non-printable, non-ASCII and % as UTF-8 bytes", () => {
    expect(encodeGrpcMessage("plain text")).toBe("plain text");
    expect(encodeGrpcMessage("100% ü\n")).toBe("100%25 %C3%BC%0A");
  });

  it("round-trips any string (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (s) => {
        expect(decodeGrpcMessage(encodeGrpcMessage(s))).toBe(s);
      }),
    );
  });

  it("keeps malformed escapes as they are", () => {
    expect(decodeGrpcMessage("50%")).toBe("50%");
    expect(decodeGrpcMessage("%zz%4")).toBe("%zz%4");
  });
});

describe("grpc-timeout", () => {
  it("parses every unit into milliseconds", () => {
    expect(parseGrpcTimeout("1H")).toBe(3_600_000);
    expect(parseGrpcTimeout("2M")).toBe(120_000);
    expect(parseGrpcTimeout("3S")).toBe(3000);
    expect(parseGrpcTimeout("250m")).toBe(250);
    expect(parseGrpcTimeout("1500u")).toBe(1.5);
    expect(parseGrpcTimeout("2000000n")).toBe(2);
    expect(parseGrpcTimeout("0m")).toBe(0);
  });

  it("rejects malformed values: no unit, bad unit, more than 8 digits, signs", () => {
    for (const v of ["", "m", "10", "10x", "123456789m", "-1m", "1.5S", " 1m"]) {
      expect(parseGrpcTimeout(v)).toBeUndefined();
    }
  });

  it("encodes within 8 digits and never shorter than asked (property)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 1e12, noNaN: true }), (ms) => {
        const s = encodeGrpcTimeout(ms);
        expect(s.length).toBeLessThanOrEqual(9);
        expect(parseGrpcTimeout(s)!).toBeGreaterThanOrEqual(Math.min(ms, 99_999_999 * 3_600_000) - 1e-9);
      }),
    );
  });
});

describe("status details", () => {
  it("round-trips reason, bytes details and JSON details", () => {
    const error = new WeftError(Code.NOT_FOUND, "gone", {
      reason: "ITEM_NOT_FOUND",
      details: [
        { type: "example.Bytes", value: new Uint8Array([1, 2, 3]) },
        { type: "example.Json", value: { a: [1, "two"] } },
      ],
    });
    const decoded = decodeDetails(encodeStatusDetails(error), encodeJsonDetails(error.details));
    expect(decoded).toEqual({
      reason: "ITEM_NOT_FOUND",
      details: [
        { type: "example.Bytes", value: new Uint8Array([1, 2, 3]) },
        { type: "example.Json", value: { a: [1, "two"] } },
      ],
    });
  });

  it("writes JSON details in the form of Weft's own status: {type, json}", () => {
    const details = [{ type: "example.Json", value: { a: [1, "two"] } }];
    const wire = JSON.parse(Buffer.from(encodeJsonDetails(details)!, "base64").toString("utf8"));
    expect(wire).toEqual([{ type: "example.Json", json: { a: [1, "two"] } }]);
    const weft = JSON.parse(
      Buffer.from(encodeStatus(new WeftError(Code.NOT_FOUND, "gone", { details }))).toString("utf8"),
    );
    expect(wire).toEqual(weft.details);
  });

  it("sends -bin values unpadded, as the gRPC spec asks, and reads them padded or not", () => {
    for (let n = 0; n < 6; n++) {
      const error = new WeftError(Code.NOT_FOUND, "g".repeat(n), {
        reason: `R${"x".repeat(n)}`,
        details: [{ type: "example.Json", value: "y".repeat(n) }],
      });
      const status = encodeStatusDetails(error)!;
      const json = encodeJsonDetails(error.details)!;
      expect(status).toMatch(/^[A-Za-z0-9+/]+$/);
      expect(json).toMatch(/^[A-Za-z0-9+/]+$/);
      const pad = (b64: string) => b64 + "=".repeat((4 - (b64.length % 4)) % 4);
      const expected = { reason: error.reason, details: [{ type: "example.Json", value: "y".repeat(n) }] };
      expect(decodeDetails(status, json)).toEqual(expected);
      expect(decodeDetails(pad(status), pad(json))).toEqual(expected);
    }
  });

  it("sends nothing for an error with neither reason nor details", () => {
    const error = new WeftError(Code.INTERNAL, "x");
    expect(encodeStatusDetails(error)).toBeUndefined();
    expect(encodeJsonDetails(error.details)).toBeUndefined();
  });

  it("ignores unreadable headers instead of hiding the status", () => {
    expect(decodeDetails("!!!not base64 protobuf", "bm90IGpzb24=")).toEqual({ reason: "", details: [] });
    const e = errorFromStatus(5, "m%C3%BC", "////", undefined, new Metadata({ a: "b" }));
    expect(e?.code).toBe(Code.NOT_FOUND);
    expect(e?.rawMessage).toBe("mü");
    expect(e?.metadata.get("a")).toBe("b");
    expect(errorFromStatus(0, "", undefined, undefined, new Metadata())).toBeUndefined();
    expect(errorFromStatus(99, "", undefined, undefined, new Metadata())?.code).toBe(Code.UNKNOWN);
  });
});

describe("HTTP and RST_STREAM mappings", () => {
  it("follows the gRPC spec", () => {
    expect(codeFromHttpStatus(404)).toBe(Code.UNIMPLEMENTED);
    expect(codeFromHttpStatus(503)).toBe(Code.UNAVAILABLE);
    expect(codeFromHttpStatus(401)).toBe(Code.UNAUTHENTICATED);
    expect(codeFromHttpStatus(418)).toBe(Code.UNKNOWN);
    expect(codeFromRstCode(8)).toBe(Code.CANCELLED);
    expect(codeFromRstCode(7)).toBe(Code.UNAVAILABLE);
    expect(codeFromRstCode(2)).toBe(Code.INTERNAL);
  });
});
