import { afterEach, describe, expect, it, vi } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { type Deferred, deferred } from "../../test/deferred.ts";
import type { RetryRefused } from "../call/client-call.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { defineService, methodsOf, unary } from "../service/service.ts";
import type { TransportNode } from "../transport/node.ts";
import { Cluster, roundRobin } from "./cluster.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<{ n: number }>(), messageType<{ n: number }>()),
});
const [get] = methodsOf(Svc) as [Call["method"]];

function makeCall(options: { signal?: AbortSignal; deadline?: number } = {}): Call {
  return clientCall(get, options);
}

function answer(from: string): CallResult {
  return { stream: false, headers: new Metadata(), message: from, trailers: new Metadata() };
}

/** One call a fake node took: the test settles it, or refuses it back to the cluster. */
interface Taken {
  call: Call;
  attempt: number;
  retry: RetryRefused | undefined;
  result: Deferred<CallResult>;
}

/** A node without sockets: its state is set by the test, and it records every call it takes. */
class FakeNode implements TransportNode {
  readonly address: string;
  ready = true;
  backingOff = false;
  /** What `connect()` returns while not ready. */
  connecting: Deferred<void> | undefined;
  /** When set, every call is refused at once (a server going away). */
  refusing = false;
  readonly taken: Taken[] = [];
  closed = false;

  constructor(address: string) {
    this.address = address;
  }

  connect(): Promise<unknown> {
    if (this.ready) return Promise.resolve();
    this.connecting ??= deferred();
    return this.connecting.promise;
  }

  call(call: Call, retry: RetryRefused | undefined, attempt: number): Promise<CallResult> {
    const result = deferred<CallResult>();
    this.taken.push({ call, attempt, retry, result });
    if (this.refusing) {
      if (retry === undefined) return Promise.reject(new WeftError(Code.UNAVAILABLE, "refused"));
      return retry(call, attempt + 1);
    }
    return result.promise;
  }

  close(): Promise<void> {
    this.closed = true;
    const error = new WeftError(Code.UNAVAILABLE, "transport closed", { reason: "TRANSPORT_CLOSED" });
    for (const t of this.taken) t.result.reject(error);
    return Promise.resolve();
  }
}

function nodes(...addresses: string[]): FakeNode[] {
  return addresses.map((a) => new FakeNode(a));
}

function outcome(p: Promise<CallResult>): Promise<CallResult | WeftError> {
  return p.catch((e: unknown) => e as WeftError);
}

/** Whether `p` has settled once pending callbacks have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return done;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("the cluster", () => {
  it("goes round robin, skipping nodes in reconnect backoff", async () => {
    const [a, b, c] = nodes("a", "b", "c");
    b!.backingOff = true;
    b!.ready = false;
    const cluster = new Cluster([a!, b!, c!]);
    for (let i = 0; i < 4; i++) void cluster.call(makeCall());
    expect(a!.taken).toHaveLength(2);
    expect(b!.taken).toHaveLength(0);
    expect(c!.taken).toHaveLength(2);
  });

  it("fails with NO_AVAILABLE_NODE when every node is backing off", async () => {
    const all = nodes("a", "b");
    for (const n of all) {
      n.backingOff = true;
      n.ready = false;
    }
    const e = await outcome(new Cluster(all).call(makeCall()));
    expect(e).toMatchObject({ code: Code.UNAVAILABLE, reason: "NO_AVAILABLE_NODE" });
  });

  it("sends a refused call to another node, and bounds the resends by maxRefusedRetries", async () => {
    const [a, b] = nodes("a", "b");
    a!.refusing = true;
    const cluster = new Cluster([a!, b!]);
    const pending = cluster.call(makeCall());
    expect(b!.taken).toHaveLength(1);
    expect(b!.taken[0]!.attempt).toBe(1);
    b!.taken[0]!.result.resolve(answer("b"));
    expect(await pending).toMatchObject({ message: "b" });

    const [x, y] = nodes("x", "y");
    x!.refusing = true;
    y!.refusing = true;
    const bounded = new Cluster([x!, y!], { maxRefusedRetries: 2 });
    const e = await outcome(bounded.call(makeCall()));
    expect(e).toMatchObject({ code: Code.UNAVAILABLE, reason: "REFUSED_STREAM" });
    expect(x!.taken.length + y!.taken.length).toBe(3); // the first try and two resends
  });

  it("settles once when close() races a call and its refusal: no node takes it after the close", async () => {
    const [a, b] = nodes("a", "b");
    const cluster = new Cluster([a!, b!]);
    const pending = outcome(cluster.call(makeCall()));
    const taken = a!.taken[0]!;
    const closing = cluster.close();
    // the refusal arrives in the same turn as the close: the resend must not reach b
    const resent = outcome(taken.retry!(taken.call, taken.attempt + 1));
    taken.result.resolve(await resent.then(() => answer("late")));
    await closing;
    expect(await pending).toMatchObject({ code: Code.UNAVAILABLE, reason: "TRANSPORT_CLOSED" });
    expect(await resent).toMatchObject({ code: Code.UNAVAILABLE, reason: "TRANSPORT_CLOSED" });
    expect(b!.taken).toHaveLength(0);
    expect(await outcome(cluster.call(makeCall()))).toMatchObject({ reason: "TRANSPORT_CLOSED" });
  });

  it("tries the next node when one cannot connect", async () => {
    const [a, b] = nodes("a", "b");
    a!.ready = false;
    const cluster = new Cluster([a!, b!]);
    const pending = cluster.call(makeCall());
    await Promise.resolve();
    a!.connecting!.reject(new WeftError(Code.UNAVAILABLE, "cannot connect", { reason: "CONNECTION_FAILED" }));
    await vi.waitFor(() => expect(b!.taken).toHaveLength(1));
    b!.taken[0]!.result.resolve(answer("b"));
    expect(await pending).toMatchObject({ message: "b" });
    expect(a!.taken).toHaveLength(0);
  });

  it("an abort while waiting for a connection rejects at once; the connection coming later does not start the call", async () => {
    const [a] = nodes("a");
    a!.ready = false;
    const cluster = new Cluster([a!]);
    const controller = new AbortController();
    const pending = outcome(cluster.call(makeCall({ signal: controller.signal })));
    expect(await settled(pending)).toBe(false);
    controller.abort();
    expect(await pending).toMatchObject({ code: Code.CANCELLED });
    a!.ready = true;
    a!.connecting!.resolve();
    await settled(a!.connecting!.promise);
    expect(a!.taken).toHaveLength(0);
  });

  it("a deadline passing while waiting for a connection rejects DEADLINE_EXCEEDED; nothing starts later", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const [a] = nodes("a");
    a!.ready = false;
    const cluster = new Cluster([a!]);
    const pending = outcome(cluster.call(makeCall({ deadline: Date.now() + 50 })));
    vi.advanceTimersByTime(49);
    expect(await settled(pending)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await pending).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    a!.ready = true;
    a!.connecting!.resolve();
    await settled(a!.connecting!.promise);
    expect(a!.taken).toHaveLength(0);
  });

  it("takes its node choice from a picker", async () => {
    const [a, b] = nodes("a", "b");
    const cluster = new Cluster([a!, b!], { picker: { pick: (ns) => ns.at(-1) } });
    void cluster.call(makeCall());
    void cluster.call(makeCall());
    expect(b!.taken).toHaveLength(2);
    expect(roundRobin().pick([a!, b!], makeCall())).toBe(a);
  });

  it("refuses bad options with a ConfigError", () => {
    expect(() => new Cluster([])).toThrow(/nodes/);
    expect(() => new Cluster(nodes("a"), { maxRefusedRetries: -1 })).toThrow(/maxRefusedRetries/);
  });
});
