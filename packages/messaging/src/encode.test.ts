import { ConfigError, Metadata } from "@weft/core";
import { runWithCallContext } from "@weft/core/internal";
import { afterEach, describe, expect, it, vi } from "vitest";
import { destination } from "./destination.ts";
import { encodeMessage } from "./encode.ts";

const orders = destination<{ n: number }>("orders.placed", { partitions: 4 });
afterEach(() => {
  vi.useRealTimers();
});

function inCall<T>(deadline: number | undefined, fn: () => T): T {
  const propagate = new Metadata({ traceparent: "00-aa-bb-01", baggage: "a=1" });
  return runWithCallContext(
    {
      deadline,
      signal: new AbortController().signal,
      propagate,
      path: "/x.v1.X/y",
      requestHeaders: propagate,
    },
    fn,
  );
}

describe("encodeMessage", () => {
  it("builds the envelope the messenger would publish: codec, partition, context headers, expiry", () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const e = inCall(1_000_000 + 5_000, () =>
      encodeMessage(
        orders,
        { n: 1 },
        { key: "k", ttlMs: 60_000, headers: { baggage: "b=2", "x-app": "1" } },
        "json",
      ),
    );
    expect(e).toMatchObject({
      kind: "event",
      destination: expect.stringMatching(/^orders\.placed\.p[0-3]$/),
      key: "k",
      expiresAt: 1_005_000, // the call's deadline, earlier than the time to live
      publishedAt: 1_000_000,
      contentType: "application/json",
      headers: { traceparent: "00-aa-bb-01", baggage: "b=2", "x-app": "1" },
    });
    expect(new TextDecoder().decode(e.body)).toBe('{"n":1}');
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  });

  it("uses the codec's default serializer and keeps a given id", () => {
    const e = encodeMessage(
      destination<{ n: number }>("a.b"),
      { n: 1 },
      { id: "5f0c4d4e-2f6a-4c1e-9d7b-1a2b3c4d5e6f" },
    );
    expect(e).toMatchObject({ contentType: "application/msgpack", destination: "a.b", expiresAt: undefined });
    expect(e.id).toBe("5f0c4d4e-2f6a-4c1e-9d7b-1a2b3c4d5e6f");
  });

  it("refuses reserved headers and a bad time to live as publish does", () => {
    expect(() => encodeMessage(orders, { n: 1 }, { headers: { "weft-id": "x" } })).toThrow(ConfigError);
    expect(() => encodeMessage(orders, { n: 1 }, { ttlMs: 0 })).toThrow(ConfigError);
  });
});
