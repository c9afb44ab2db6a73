import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors/weft-error.ts";
import { applyCors, isPreflight, preflightHeaders, resolveCors } from "./cors.ts";

const BASE = {
  allowHeaders: { required: ["content-type"], defaults: ["authorization", "traceparent"] },
  exposeHeaders: { required: ["grpc-status"], defaults: [] },
};

function response() {
  const headers = new Map<string, string>();
  return {
    headers,
    setHeader: (name: string, value: string) => headers.set(name, value),
    hasHeader: (name: string) => headers.has(name),
  };
}

describe("cors", () => {
  it("is off unless configured, and checks what it is given", () => {
    expect(resolveCors(undefined, BASE)).toBeUndefined();
    expect(resolveCors(false, BASE)).toBeUndefined();
    expect(() => resolveCors({ allowOrigins: "*", allowCredentials: true }, BASE)).toThrow(ConfigError);
    expect(() => resolveCors({ allowOrigins: "https://a" as never }, BASE)).toThrow(/cors.allowOrigins/);
    expect(() => resolveCors({ allowOrigins: "*", maxAgeSeconds: -1 }, BASE)).toThrow(/cors.maxAgeSeconds/);
    expect(() => resolveCors({ allowOrigins: "*", allowHeaders: "x" as never }, BASE)).toThrow(
      /cors.allowHeaders/,
    );
  });

  it("keeps the required headers, uses the defaults unless given a list, lower-cased once each", () => {
    expect(resolveCors({ allowOrigins: "*" }, BASE)).toMatchObject({
      allowHeaders: "content-type, authorization, traceparent",
      exposeHeaders: "grpc-status",
      maxAge: "600",
    });
    expect(
      resolveCors(
        { allowOrigins: "*", allowHeaders: ["X-Mine", "Content-Type"], exposeHeaders: ["x-out"] },
        BASE,
      ),
    ).toMatchObject({ allowHeaders: "content-type, x-mine", exposeHeaders: "grpc-status, x-out" });
  });

  it("answers allowed origins only, and a preflight only for them", () => {
    const cors = resolveCors({ allowOrigins: ["https://app"], allowCredentials: true }, BASE)!;
    const pre = { headers: { origin: "https://app", "access-control-request-method": "POST" } };
    expect(isPreflight("OPTIONS", pre)).toBe(true);
    expect(isPreflight("POST", pre)).toBe(false);
    const ok = response();
    expect(applyCors(cors, pre, ok)).toBe(true);
    expect(Object.fromEntries(ok.headers)).toEqual({
      vary: "Origin",
      "access-control-allow-origin": "https://app",
      "access-control-allow-credentials": "true",
      "access-control-expose-headers": "grpc-status",
    });
    expect(preflightHeaders(cors, pre, ok, "POST, GET")).toEqual({
      "access-control-allow-methods": "POST, GET",
      "access-control-allow-headers": "content-type, authorization, traceparent",
      "access-control-max-age": "600",
    });
    const other = response();
    const evil = { headers: { origin: "https://evil", "access-control-request-method": "POST" } };
    expect(applyCors(cors, evil, other)).toBe(false);
    expect(preflightHeaders(cors, evil, other, "POST")).toBeUndefined();
    expect(applyCors(cors, { headers: {} }, response())).toBe(false);
  });
});
