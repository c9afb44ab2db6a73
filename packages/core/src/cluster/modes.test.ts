import { afterEach, describe, expect, it, vi } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { answer, fakeNodes } from "../../test/fake-node.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call } from "../interceptor/call.ts";
import { defineService, methodsOf, oneway, serverStreaming, unary } from "../service/service.ts";
import { Cluster } from "./cluster.ts";
import { failback, failfast, failover, failsafe, forking } from "./modes.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<{ n: number }>(), messageType<string>(), { idempotent: true }),
  put: unary(messageType<{ n: number }>(), messageType<string>()),
  watch: serverStreaming(messageType<{ n: number }>(), messageType<string>(), { idempotent: true }),
  log: oneway(messageType<{ n: number }>()),
});
const [get, put, watch, log] = methodsOf(Svc) as [
  Call["method"],
  Call["method"],
  Call["method"],
  Call["method"],
];

const down = () => new WeftError(Code.UNAVAILABLE, "connection closed", { reason: "CONNECTION_CLOSED" });
const outcome = (p: Promise<unknown>) => p.catch((e: unknown) => e);
const messageOf = async (p: Promise<unknown>) => ((await p) as { message: unknown }).message;

afterEach(() => {
  vi.useRealTimers();
});

describe("failover", () => {
  it("sends a failed idempotent call to a different node, bounded by retries", async () => {
    const [a, b, c] = fakeNodes("a", "b", "c");
    a!.failWith = down();
    b!.failWith = down();
    const cluster = new Cluster([a!, b!, c!], { mode: failover({ retries: 2 }) });
    expect(await messageOf(cluster.call(clientCall(get)))).toBe("c");
    expect(a!.calls).toHaveLength(1); // never the same node twice
    expect(b!.calls.length).toBeLessThanOrEqual(1);

    const [x, y, z] = fakeNodes("x", "y", "z");
    for (const n of [x!, y!, z!]) n.failWith = down();
    const bounded = new Cluster([x!, y!, z!], { mode: failover({ retries: 1 }) });
    expect(await outcome(bounded.call(clientCall(get)))).toMatchObject({ code: Code.UNAVAILABLE });
    expect([x!, y!, z!].map((n) => n.calls.length).sort()).toEqual([0, 1, 1]);
  });

  it("never resends a non-idempotent call, nor an error the node is not to blame for", async () => {
    const [a, b] = fakeNodes("a", "b");
    a!.failWith = down();
    const cluster = new Cluster([a!, b!], { mode: failover() });
    expect(await outcome(cluster.call(clientCall(put)))).toMatchObject({ code: Code.UNAVAILABLE });
    expect(b!.calls).toHaveLength(0);
    a!.failWith = new WeftError(Code.NOT_FOUND, "no such item");
    b!.failWith = a!.failWith;
    expect(await outcome(cluster.call(clientCall(get)))).toMatchObject({ code: Code.NOT_FOUND });
    expect(a!.calls.length + b!.calls.length).toBe(2); // the put, then one get
  });

  it("stays within the caller's deadline: no attempt starts after it passed", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const [a, b, c] = fakeNodes("a", "b", "c");
    for (const n of [a!, b!, c!]) n.hold = true;
    const cluster = new Cluster([a!, b!, c!], { mode: failover({ retries: 5 }) });
    const deadline = Date.now() + 100;
    const pending = outcome(cluster.call(clientCall(get, { deadline })));
    const taken = () => [a!, b!, c!].flatMap((n) => n.calls);
    vi.advanceTimersByTime(60);
    taken()[0]!.result.reject(down());
    for (let i = 0; i < 10 && taken().length < 2; i++) await Promise.resolve();
    expect(taken()).toHaveLength(2);
    expect(taken()[1]!.call.deadline).toBe(deadline); // the same budget, not a fresh one
    vi.advanceTimersByTime(40);
    // the deadline passed; the node reports it failing with UNAVAILABLE: no third attempt starts
    taken()[1]!.result.reject(down());
    expect(await pending).toMatchObject({ code: Code.UNAVAILABLE });
    expect(taken()).toHaveLength(2);
  });

  it("applies to a streaming response only until it started", async () => {
    const [a, b] = fakeNodes("a", "b");
    a!.failWith = down();
    const cluster = new Cluster([a!, b!], { methods: { watch: { mode: failover() } } });
    expect(await messageOf(cluster.call(clientCall(watch)))).toBe("b");
  });
});

describe("failfast and failsafe", () => {
  it("failfast makes one attempt", async () => {
    const [a, b] = fakeNodes("a", "b");
    a!.failWith = down();
    const cluster = new Cluster([a!, b!], { mode: failfast() });
    expect(await outcome(cluster.call(clientCall(get)))).toMatchObject({ code: Code.UNAVAILABLE });
    expect(b!.calls).toHaveLength(0);
  });

  it("failsafe answers with the default response and reports the error; the caller's cancellation still fails", async () => {
    const [a] = fakeNodes("a");
    a!.failWith = new WeftError(Code.INTERNAL, "boom");
    const swallowed: Code[] = [];
    const cluster = new Cluster([a!], {
      mode: failsafe({ response: "default", onError: (e) => swallowed.push(e.code) }),
    });
    expect(await messageOf(cluster.call(clientCall(get)))).toBe("default");
    expect(swallowed).toEqual([Code.INTERNAL]);
    const controller = new AbortController();
    controller.abort();
    a!.failWith = new WeftError(Code.CANCELLED, "cancelled");
    expect(await outcome(cluster.call(clientCall(get, { signal: controller.signal })))).toMatchObject({
      code: Code.CANCELLED,
    });
    const narrow = new Cluster([a!], { mode: failsafe({ codes: [Code.UNAVAILABLE] }) });
    a!.failWith = new WeftError(Code.INTERNAL, "boom");
    expect(await outcome(narrow.call(clientCall(get)))).toMatchObject({ code: Code.INTERNAL });
  });

  it("a mode set for a method it does not fit fails its calls; set for the cluster, that method runs plainly", async () => {
    const [a] = fakeNodes("a");
    const own = new Cluster([a!], { methods: { watch: { mode: failsafe() } } });
    expect(await outcome(own.call(clientCall(watch)))).toMatchObject({ code: Code.FAILED_PRECONDITION });
    const wide = new Cluster([a!], { mode: forking() });
    expect(await messageOf(wide.call(clientCall(put)))).toBe("a");
    expect(() => new Cluster([a!], { mode: {} as never })).toThrow(/"mode"/);
    expect(() => failover({ retries: -1 })).toThrow(/retries/);
    expect(() => forking({ count: 1 })).toThrow(/count/);
    expect(() => failback({ queueSize: 0 })).toThrow(/queueSize/);
  });
});

describe("failback", () => {
  it("answers at once, then resends in the background with backoff 1 s, 2 s, 4 s… until delivered", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const [a] = fakeNodes("a");
    a!.failWith = down();
    const mode = failback({ random: () => 0.5 });
    const cluster = new Cluster([a!], { mode });
    expect(await messageOf(cluster.call(clientCall(log)))).toBeUndefined();
    expect(mode.stats()).toEqual({ queued: 1, delivered: 0, dropped: 0, abandoned: 0 });
    await vi.advanceTimersByTimeAsync(999);
    expect(a!.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // 1 s: first resend, fails
    expect(a!.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1999);
    expect(a!.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // +2 s: second resend, fails
    expect(a!.calls).toHaveLength(3);
    a!.failWith = undefined;
    await vi.advanceTimersByTimeAsync(4000); // +4 s: delivered
    expect(a!.calls).toHaveLength(4);
    expect(a!.calls[3]!.call.signal.aborted).toBe(false);
    expect(mode.stats()).toEqual({ queued: 0, delivered: 1, dropped: 0, abandoned: 0 });
  });

  it("caps the delay at 60 s, gives up after maxRetries, and bounds the queue by dropping the oldest", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const [a] = fakeNodes("a");
    a!.failWith = down();
    const mode = failback({ random: () => 0.5, maxRetries: 8, queueSize: 3 });
    const cluster = new Cluster([a!], { mode });
    await cluster.call(clientCall(log));
    const times: number[] = [];
    const start = Date.now();
    for (let i = 0; i < 8; i++) {
      const before = a!.calls.length;
      while (a!.calls.length === before) await vi.advanceTimersByTimeAsync(1000);
      times.push((Date.now() - start) / 1000);
    }
    expect(times).toEqual([1, 3, 7, 15, 31, 63, 123, 183]);
    expect(mode.stats()).toMatchObject({ queued: 0, abandoned: 1 });

    for (let i = 0; i < 5; i++) await cluster.call(clientCall(log));
    expect(mode.stats()).toMatchObject({ queued: 3, dropped: 2 });
    const sentBefore = a!.calls.length;
    await vi.advanceTimersByTimeAsync(1000);
    expect(a!.calls.length - sentBefore).toBe(3); // only the three kept are resent
  });
});

describe("forking", () => {
  it("sends to two nodes at once; the first success wins and the other is cancelled through its signal", async () => {
    const [a, b, c] = fakeNodes("a", "b", "c");
    for (const n of [a!, b!, c!]) n.hold = true;
    const cluster = new Cluster([a!, b!, c!], { mode: forking() });
    const pending = cluster.call(clientCall(get));
    const [first, second, ...more] = [a!, b!, c!].flatMap((n) => n.calls);
    expect(more).toHaveLength(0);
    for (const fork of [first!, second!]) expect(fork.call).toMatchObject({ message: { n: 1 } });
    second!.result.resolve(answer("second"));
    expect(await messageOf(pending)).toBe("second");
    expect(first!.call.signal.aborted).toBe(true);
    expect(first!.call.signal.reason).toMatchObject({ code: Code.CANCELLED });
    expect(second!.call.signal.aborted).toBe(false);
    expect([a!, b!, c!].filter((n) => n.calls.length === 1)).toHaveLength(2);
  });

  it("fails with the first error when every fork fails", async () => {
    const [a, b] = fakeNodes("a", "b");
    a!.failWith = new WeftError(Code.INTERNAL, "a broke");
    b!.failWith = new WeftError(Code.UNAVAILABLE, "b down");
    const cluster = new Cluster([a!, b!], { mode: forking({ count: 3 }) });
    expect(await outcome(cluster.call(clientCall(get)))).toMatchObject({ code: Code.INTERNAL });
    expect(a!.calls.length + b!.calls.length).toBe(2);
  });
});
