/**
 * `openCall`: a call brought by another protocol front-end runs through the same pieces as a
 * Weft call (call object, handler context, call context, deadline timer). `setTimeout`,
 * `clearTimeout` and `Date` are faked.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  createServer,
  type HandlerContext,
  Metadata,
  type Server,
  type UnaryResult,
  WeftError,
} from "../../src/index.ts";
import { type OpenCallInit, openCall, serverInternals } from "../../src/internal.ts";
import { Echo } from "../fixtures.ts";

const servers: Server[] = [];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

function server(onEcho: (ctx: HandlerContext) => void = () => {}): Server {
  const s = createServer({ onError: () => {} }).register(Echo, {
    echo: (req, ctx) => {
      onEcho(ctx);
      return { text: req.text };
    },
    count: async function* () {},
    sum: async () => ({ total: 0, count: 0 }),
    chat: async function* () {},
    notify: () => {},
  });
  servers.push(s);
  return s;
}

const init = (timeoutMs: number | undefined) => ({
  path: "/test.v1.Echo/echo",
  headers: new Metadata({ traceparent: "00-abc-def-01", "x-other": "1" }),
  timeoutMs,
  serializer: "json" as const,
  protocol: "weft" as const,
  peer: "10.0.0.1:5000",
});

const openExternalCall = (s: Server, i: OpenCallInit) => openCall(serverInternals(s), i);

describe("openCall", () => {
  it("waits out a budget beyond setTimeout's 24.8-day limit instead of expiring at once", () => {
    const thirtyDays = 30 * 24 * 3600 * 1000;
    const ext = openExternalCall(server(), init(thirtyDays));
    vi.advanceTimersByTime(1000);
    expect(ext.signal.aborted).toBe(false);
    vi.advanceTimersByTime(thirtyDays - 1001);
    expect(ext.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(ext.signal.aborted).toBe(true);
    expect(ext.signal.reason).toMatchObject({ code: Code.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED" });
    ext.finish();
  });

  it("stops its deadline timer when finished", () => {
    const ext = openExternalCall(server(), init(100));
    ext.finish();
    vi.advanceTimersByTime(1000);
    expect(ext.signal.aborted).toBe(false);
  });

  it("gives the handler and the call context what a Weft call gets", async () => {
    let seen: HandlerContext | undefined;
    const ext = openExternalCall(
      server((ctx) => {
        seen = ctx;
      }),
      init(5000),
    );
    const result = (await ext.run({ text: "hi" })) as UnaryResult;
    ext.finish();
    expect(result.message).toEqual({ text: "hi" });
    expect(seen).toBe(ext.handlerContext);
    expect(seen!.deadline).toBe(ext.deadline);
    expect(seen!.signal).toBe(ext.signal);
    expect(seen!.peer).toBe("10.0.0.1:5000");
    expect(seen!.requestHeaders.get("x-other")).toBe("1");
    expect(ext.context.deadline).toBe(ext.deadline);
    expect(ext.context.signal).toBe(ext.signal);
    expect(ext.context.path).toBe("/test.v1.Echo/echo");
    expect(ext.context.propagate.toJSON()).toEqual({ traceparent: "00-abc-def-01" });
  });

  it("refuses a spent budget", () => {
    expect(() => openExternalCall(server(), init(0))).toThrow(WeftError);
  });
});
