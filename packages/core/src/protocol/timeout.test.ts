import { describe, expect, it } from "vitest";
import { FrameDecoder } from "./decode.ts";
import { encodeOutFrame, headOf } from "./encode.ts";
import { type Frame, FrameType, PseudoKey } from "./frame.ts";
import { decodeTimeout, encodeTimeout, lowerTimeout, MAX_TIMEOUT_MS } from "./timeout.ts";

describe(":timeout (§11)", () => {
  it("has a maximum of 12 digits, exact in a double and in int64 nanoseconds", () => {
    expect(MAX_TIMEOUT_MS).toBe(999_999_999_999);
    expect(String(MAX_TIMEOUT_MS)).toHaveLength(12);
    expect(BigInt(MAX_TIMEOUT_MS) * 1_000_000n).toBeLessThan(2n ** 63n);
  });

  it("reads 1 to 12 ASCII digits, leading zeros included", () => {
    expect(decodeTimeout("0")).toBe(0);
    expect(decodeTimeout("1500")).toBe(1500);
    expect(decodeTimeout("0001500")).toBe(1500);
    expect(decodeTimeout("999999999999")).toBe(MAX_TIMEOUT_MS);
    expect(decodeTimeout("000000000001")).toBe(1);
  });

  it.each(["", "1000000000000", "0000000000001", "-1", "+1", " 1", "1 ", "1.5", "1e3", "100m", "0x10", "١٢"])(
    "refuses %j",
    (value) => {
      expect(decodeTimeout(value)).toBeUndefined();
    },
  );

  it("writes a budget as it is, clamped to the maximum", () => {
    expect(encodeTimeout(1)).toBe("1");
    expect(encodeTimeout(1500)).toBe("1500");
    expect(encodeTimeout(MAX_TIMEOUT_MS)).toBe("999999999999");
    expect(encodeTimeout(MAX_TIMEOUT_MS + 1)).toBe("999999999999");
    expect(encodeTimeout(8.64e15)).toBe("999999999999");
  });

  describe("lowerTimeout", () => {
    const request = (timeout: string, body = 10) =>
      encodeOutFrame(
        FrameType.REQUEST,
        0,
        7,
        1,
        0,
        [
          [PseudoKey.path, "/a.B/C"],
          [PseudoKey.timeout, timeout],
          ["x-after", "kept"],
        ],
        Buffer.alloc(body, 0x61),
      );
    const decoded = (frame: Buffer): Frame => {
      const frames: Frame[] = [];
      new FrameDecoder(
        (f) => frames.push(f),
        (e) => expect.fail(e.error.message),
      ).push(frame);
      return frames[0]!;
    };
    const timeoutOf = (frame: Buffer) => new Map(decoded(frame).metadata).get(PseudoKey.timeout);

    it("rewrites the digits in place with the same width, leaving every other byte as it was", () => {
      const frame = request("1500") as Buffer;
      const before = Buffer.from(frame);
      expect(lowerTimeout(frame, 1200)).toBe(true);
      expect(timeoutOf(frame)).toBe("1200");
      expect(lowerTimeout(frame, 7)).toBe(true);
      expect(timeoutOf(frame)).toBe("0007");
      expect(decodeTimeout(timeoutOf(frame)!)).toBe(7);
      expect(frame.length).toBe(before.length);
      const changed = [...frame.keys()].filter((i) => frame[i] !== before[i]);
      expect(changed.length).toBeLessThanOrEqual(4);
      expect(new Map(decoded(frame).metadata).get("x-after")).toBe("kept");
    });

    it("writes zeros for a spent budget, and never raises one", () => {
      const frame = request("250") as Buffer;
      expect(lowerTimeout(frame, 300)).toBe(false);
      expect(lowerTimeout(frame, 250)).toBe(false);
      expect(timeoutOf(frame)).toBe("250");
      expect(lowerTimeout(frame, -40)).toBe(true);
      expect(timeoutOf(frame)).toBe("000");
    });

    it("finds it in the head of a split frame, and leaves a frame without one alone", () => {
      const split = request("999999999999", 64 * 1024);
      expect(Buffer.isBuffer(split)).toBe(false);
      expect(lowerTimeout(headOf(split), 60_000)).toBe(true);
      expect(headOf(split).includes("000000060000")).toBe(true);
      const none = encodeOutFrame(
        FrameType.REQUEST,
        0,
        9,
        1,
        0,
        [[PseudoKey.path, "/a.B/C"]],
        undefined,
      ) as Buffer;
      const copy = Buffer.from(none);
      expect(lowerTimeout(none, 1)).toBe(false);
      expect(none.equals(copy)).toBe(true);
    });
  });
});
