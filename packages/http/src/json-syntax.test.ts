import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findJsonSyntaxError } from "./json-syntax.ts";

describe("findJsonSyntaxError", () => {
  it("says where and why", () => {
    expect(findJsonSyntaxError('{"a": tru}')).toEqual({
      position: 6,
      line: 1,
      column: 7,
      reason: 'unexpected character "t", expected a value',
    });
    expect(findJsonSyntaxError("")).toMatchObject({
      position: 0,
      reason: "unexpected end of input, expected a value",
    });
    expect(findJsonSyntaxError('{"a":1,}')).toMatchObject({
      position: 7,
      reason: expect.stringContaining("property name"),
    });
    expect(findJsonSyntaxError('["a\u0001"]')).toMatchObject({
      position: 3,
      reason: expect.stringContaining("control"),
    });
    expect(findJsonSyntaxError('"\\x"')).toMatchObject({ position: 1, reason: "invalid escape in string" });
    expect(findJsonSyntaxError("[1]\n\n  x")).toMatchObject({ position: 7, line: 3, column: 3 });
    expect(findJsonSyntaxError("01")).toMatchObject({ position: 1 });
    expect(findJsonSyntaxError('"abc')).toMatchObject({ position: 0, reason: "unterminated string" });
  });

  it("handles deep nesting without recursion", () => {
    expect(findJsonSyntaxError(`${"[".repeat(100_000)}${"]".repeat(100_000)}`)).toBeUndefined();
    expect(findJsonSyntaxError(`${"[".repeat(100_000)}${"]".repeat(99_999)}`)).toMatchObject({
      position: 199_999,
    });
  });

  it("agrees with JSON.parse on what is valid", () => {
    const texts = fc.oneof(
      fc.json(),
      fc.string(),
      fc
        .json()
        .chain((j) =>
          fc
            .tuple(fc.nat(j.length), fc.string({ maxLength: 3 }))
            .map(([at, s]) => j.slice(0, at) + s + j.slice(at + 1)),
        ),
    );
    fc.assert(
      fc.property(texts, (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        const error = findJsonSyntaxError(text);
        expect(error === undefined).toBe(valid);
        if (error !== undefined) expect(error.position).toBeLessThanOrEqual(text.length);
      }),
      { numRuns: 2000 },
    );
  });
});
