import { describe, expect, it } from "vitest";
import { Metadata } from "../metadata/metadata.ts";
import { Code } from "./code.ts";
import { ConfigError, WeftError } from "./weft-error.ts";

const BRAND = Symbol.for("@weft/core/WeftError");

describe("WeftError", () => {
  it("carries code, reason, message, metadata, details and cause", () => {
    const cause = new Error("socket closed");
    const e = new WeftError(Code.UNAVAILABLE, "no node answered", {
      reason: "NO_AVAILABLE_NODE",
      metadata: { "Retry-After-Ms": "250" },
      details: [{ type: "example.Hint", value: { tries: 3 } }],
      cause,
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("WeftError");
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.reason).toBe("NO_AVAILABLE_NODE");
    expect(e.message).toBe("[UNAVAILABLE] no node answered");
    expect(e.rawMessage).toBe("no node answered");
    expect(e.metadata).toBeInstanceOf(Metadata);
    expect(e.metadata.get("retry-after-ms")).toBe("250");
    expect(e.details).toEqual([{ type: "example.Hint", value: { tries: 3 } }]);
    expect(e.cause).toBe(cause);
    expect(typeof e.stack).toBe("string");
  });

  it("has sensible defaults", () => {
    const e = new WeftError(Code.INTERNAL, "");
    expect(e.message).toBe("[INTERNAL]");
    expect(e.rawMessage).toBe("");
    expect(e.reason).toBe("");
    expect(e.metadata.size).toBe(0);
    expect(e.details).toEqual([]);
    expect(e.cause).toBeUndefined();
  });

  it("keeps a Metadata it is given", () => {
    const md = new Metadata({ a: "1" });
    expect(new WeftError(Code.ABORTED, "x", { metadata: md }).metadata).toBe(md);
  });

  describe("instanceof", () => {
    it("holds for real WeftErrors and not for other errors or values", () => {
      expect(new WeftError(Code.OK, "")).toBeInstanceOf(WeftError);
      for (const v of [new Error("x"), {}, null, undefined, 5, "WeftError", Symbol.for("x")]) {
        expect(v instanceof WeftError).toBe(false);
      }
    });

    it("holds across duplicate installs, through the global Symbol.for brand", () => {
      // What a WeftError from another copy of @weft/core looks like to this one.
      const foreign = Object.assign(new Error("[NOT_FOUND] x"), {
        [BRAND]: true,
        code: Code.NOT_FOUND,
        reason: "",
      });
      expect(foreign instanceof WeftError).toBe(true);
      expect(WeftError.from(foreign)).toBe(foreign);
      const plainObject = { [BRAND]: true };
      expect(plainObject instanceof WeftError).toBe(true);
      expect({ [BRAND]: "yes" } instanceof WeftError).toBe(false);
      expect({ [Symbol("@weft/core/WeftError")]: true } instanceof WeftError).toBe(false);
    });

    it("keeps the brand off the error's own, enumerable properties", () => {
      const e = new WeftError(Code.UNKNOWN, "x");
      expect(Object.hasOwn(e, BRAND)).toBe(false);
      expect(Object.getOwnPropertySymbols(e)).toEqual([]);
      expect((e as unknown as Record<symbol, unknown>)[BRAND]).toBe(true);
    });
  });

  describe("from", () => {
    it("returns a WeftError as is", () => {
      const e = new WeftError(Code.ABORTED, "x");
      expect(WeftError.from(e)).toBe(e);
      expect(WeftError.from(e, Code.UNKNOWN)).toBe(e);
    });

    it("maps aborts to CANCELLED and timeouts to DEADLINE_EXCEEDED", () => {
      const abort = new DOMException("stopped", "AbortError");
      const a = WeftError.from(abort);
      expect(a.code).toBe(Code.CANCELLED);
      expect(a.rawMessage).toBe("stopped");
      expect(a.cause).toBe(abort);

      const controller = new AbortController();
      controller.abort();
      expect(WeftError.from(controller.signal.reason).code).toBe(Code.CANCELLED);

      const named = Object.assign(new Error("gone"), { name: "AbortError" });
      expect(WeftError.from(named).code).toBe(Code.CANCELLED);

      const timeout = new DOMException("too slow", "TimeoutError");
      expect(WeftError.from(timeout).code).toBe(Code.DEADLINE_EXCEEDED);
    });

    it("wraps other errors in the fallback code (INTERNAL by default), keeping the cause", () => {
      const err = new TypeError("x is not a function");
      const e = WeftError.from(err);
      expect(e.code).toBe(Code.INTERNAL);
      expect(e.rawMessage).toBe("x is not a function");
      expect(e.cause).toBe(err);
      expect(WeftError.from(err, Code.INVALID_ARGUMENT).code).toBe(Code.INVALID_ARGUMENT);
    });

    it("wraps thrown non-errors", () => {
      const e = WeftError.from("boom");
      expect(e.code).toBe(Code.INTERNAL);
      expect(e.rawMessage).toBe("boom");
      expect(e.cause).toBe("boom");
      expect(WeftError.from(undefined, Code.UNKNOWN).rawMessage).toBe("undefined");
      expect(WeftError.from({ code: 5 }).code).toBe(Code.INTERNAL);
    });
  });

  describe("fromWire", () => {
    it("keeps codes in range and reads the rest as UNKNOWN", () => {
      expect(WeftError.fromWire(5, "m").code).toBe(Code.NOT_FOUND);
      for (const n of [17, -1, 2.5, 0xffffffff]) {
        const e = WeftError.fromWire(n, "m", { reason: "R" });
        expect(e.code).toBe(Code.UNKNOWN);
        expect(e.reason).toBe("R");
        expect(e.message).toBe("[UNKNOWN] m");
      }
    });
  });
});

describe("ConfigError", () => {
  it("names the option, what was expected and what was given", () => {
    const e = new ConfigError("maxFrameBytes", "a positive integer", -1);
    expect(e).toBeInstanceOf(TypeError);
    expect(e.name).toBe("ConfigError");
    expect(e.option).toBe("maxFrameBytes");
    expect(e.message).toBe('invalid option "maxFrameBytes": expected a positive integer, got -1');
    expect(new ConfigError("a", "b", "s").message).toContain('got "s"');
    expect(new ConfigError("a", "b", null).message).toContain("got null");
    expect(new ConfigError("a", "b", { x: 1 }).message).toContain("got object");
    expect(new ConfigError("a", "b", () => 1).message).toContain("got function");
  });

  it("is not a WeftError", () => {
    expect(new ConfigError("a", "b", 1) instanceof WeftError).toBe(false);
  });
});
