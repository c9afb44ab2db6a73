import { describe, expect, it } from "vitest";
import { Code, codeName, isCode } from "./code.ts";

// gRPC's status codes, in order: the numbers must never change.
const GRPC = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

describe("Code", () => {
  it("is gRPC's table 0–16 exactly", () => {
    expect(Object.keys(Code)).toEqual(GRPC);
    GRPC.forEach((name, i) => {
      expect(Code[name]).toBe(i);
    });
  });

  it("names every code, and reads unknown numbers as UNKNOWN", () => {
    GRPC.forEach((name, i) => {
      expect(codeName(i)).toBe(name);
    });
    for (const n of [-1, 17, 1.5, Number.NaN, 2 ** 32]) expect(codeName(n)).toBe("UNKNOWN");
  });

  it("recognises exactly the seventeen codes", () => {
    for (let i = 0; i <= 16; i++) expect(isCode(i)).toBe(true);
    for (const v of [-1, 17, 0.5, Number.NaN, "0", null, undefined, 1n]) expect(isCode(v)).toBe(false);
  });
});
