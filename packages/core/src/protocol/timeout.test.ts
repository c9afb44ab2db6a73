import { describe, expect, it } from "vitest";
import { decodeTimeout, encodeTimeout, MAX_TIMEOUT_MS } from "./timeout.ts";

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
});
