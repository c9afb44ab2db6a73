/**
 * `onCallEnd`: the server tells a call's end watchers once, when it releases the call, with how it
 * ended and how long it took, and puts no listener on the call's signal for it. Over the memory
 * transport (the Weft protocol, the server's own connections); `setTimeout`, `clearTimeout`, `Date`
 * and `performance` are faked, so deadlines and durations are exact.
 */
import { getEventListeners } from "node:events";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type Call,
  type CallEndWatcher,
  Code,
  createClient,
  createMemoryTransport,
  createServer,
  type Interceptor,
  onCallEnd,
  type Server,
  type ServiceImpl,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, echoHandlers } from "../fixtures.ts";

interface Ended {
  tag: string;
  path: string;
  error: unknown;
  seconds: number;
}

/** Records every end it is told, with the tag the call registered. */
class Recorder implements CallEndWatcher<string> {
  readonly ended: Ended[] = [];
  end(tag: string, call: Call, error: unknown, seconds: number): void {
    this.ended.push({ tag, path: call.method.path, error, seconds });
  }
}

/** A server interceptor watching each call's end with `watcher`, tagged `tag`. */
function watching(watcher: CallEndWatcher<string>, tag: string, registered?: boolean[]): Interceptor {
  return (next) => (call) => {
    const ok = onCallEnd(call, watcher, tag);
    registered?.push(ok);
    return next(call);
  };
}

const servers: Server[] = [];
const transports: Transport[] = [];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] });
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

function start(handlers: Partial<ServiceImpl<typeof Echo>>, interceptors: Interceptor[]) {
  const server = createServer({ onError: () => {}, interceptors }).register(Echo, {
    ...echoHandlers,
    ...handlers,
  });
  const transport = createMemoryTransport(server);
  servers.push(server);
  transports.push(transport);
  return { server, client: createClient(Echo, transport) };
}

/** Lets the memory transport's frames (sent on `setImmediate`, which stays real) go through. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe("onCallEnd", () => {
  it("tells a unary call's end once its response is sent, timed from registration, with no signal listener", async () => {
    const rec = new Recorder();
    const release = deferred();
    let listeners = -1;
    const { client } = start(
      {
        echo: async (req, ctx) => {
          listeners = getEventListeners(ctx.signal, "abort").length;
          await release.promise;
          return { text: req.text };
        },
      },
      [watching(rec, "a")],
    );
    const reply = client.echo({ text: "hi" });
    await settle();
    expect(rec.ended).toEqual([]);
    vi.advanceTimersByTime(250);
    release.resolve();
    await expect(reply).resolves.toMatchObject({ text: "hi" });
    expect(rec.ended).toEqual([{ tag: "a", path: "/test.v1.Echo/echo", error: undefined, seconds: 0.25 }]);
    expect(listeners).toBe(0);
  });

  it("tells what the handler threw, as it threw it", async () => {
    const rec = new Recorder();
    const thrown = new WeftError(Code.NOT_FOUND, "no such thing");
    const plain = new Error("boom");
    let which: Error = thrown;
    const { client } = start(
      {
        echo: () => {
          throw which;
        },
      },
      [watching(rec, "a")],
    );
    await expect(client.echo({ text: "x" })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    which = plain;
    await expect(client.echo({ text: "x" })).rejects.toMatchObject({ code: Code.INTERNAL });
    expect(rec.ended.map((e) => e.error)).toEqual([thrown, plain]);
  });

  it("tells a stream's end once its last message and status are sent", async () => {
    const rec = new Recorder();
    const more = deferred();
    const { client } = start(
      {
        count: async function* () {
          yield { i: 1 };
          await more.promise;
          yield { i: 2 };
        },
      },
      [watching(rec, "s")],
    );
    const received: number[] = [];
    const reading = (async () => {
      for await (const m of client.count({ n: 2 })) received.push(m.i);
    })();
    await settle();
    expect(received).toEqual([1]);
    expect(rec.ended).toEqual([]);
    vi.advanceTimersByTime(40);
    more.resolve();
    await reading;
    expect(received).toEqual([1, 2]);
    expect(rec.ended).toEqual([{ tag: "s", path: "/test.v1.Echo/count", error: undefined, seconds: 0.04 }]);
  });

  it("tells a call the caller cancelled as CANCELLED while the handler still runs", async () => {
    const rec = new Recorder();
    const never = deferred<{ text: string }>();
    const { client } = start({ echo: () => never.promise }, [watching(rec, "a")]);
    const abort = new AbortController();
    const reply = client.echo({ text: "x" }, { signal: abort.signal });
    await settle();
    abort.abort();
    await expect(reply).rejects.toMatchObject({ code: Code.CANCELLED });
    await settle();
    expect(rec.ended).toHaveLength(1);
    expect(rec.ended[0]!.error).toMatchObject({ code: Code.CANCELLED });
  });

  it("tells a call its deadline stopped as DEADLINE_EXCEEDED, at the deadline", async () => {
    const rec = new Recorder();
    const never = deferred<{ text: string }>();
    // the server shortens the budget, so its deadline, not the client's, stops the call
    const shorten: Interceptor = (next) => (call) => next({ ...call, deadline: Date.now() + 50 });
    const { client } = start({ echo: () => never.promise }, [watching(rec, "a"), shorten]);
    const reply = client.echo({ text: "x" }, { timeoutMs: 100 });
    reply.catch(() => {});
    await settle();
    await vi.advanceTimersByTimeAsync(50);
    await settle();
    expect(rec.ended).toHaveLength(1);
    expect(rec.ended[0]!.error).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(rec.ended[0]!.seconds).toBe(0.05);
    await expect(reply).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("tells the calls shutdown gave up on as UNAVAILABLE", async () => {
    const rec = new Recorder();
    const never = deferred<{ text: string }>();
    const { server, client } = start({ echo: () => never.promise }, [watching(rec, "a")]);
    const reply = client.echo({ text: "x" });
    reply.catch(() => {});
    await settle();
    const done = server.shutdown({ timeoutMs: 50 });
    await vi.advanceTimersByTimeAsync(50);
    await expect(done).resolves.toEqual({ cancelled: 1 });
    expect(rec.ended).toHaveLength(1);
    expect(rec.ended[0]!.error).toMatchObject({ code: Code.UNAVAILABLE });
  });

  it("tells every watcher of a call the same duration, also when one of them throws", async () => {
    const first = new Recorder();
    const second = new Recorder();
    const throwing: CallEndWatcher<string> = {
      end: () => {
        throw new Error("a broken watcher");
      },
    };
    const release = deferred();
    const { client } = start(
      {
        echo: async (req) => {
          await release.promise;
          return { text: req.text };
        },
      },
      [watching(first, "1"), watching(throwing, "t"), watching(second, "2")],
    );
    const reply = client.echo({ text: "x" });
    await settle();
    vi.advanceTimersByTime(10);
    release.resolve();
    await expect(reply).resolves.toMatchObject({ text: "x" });
    expect(first.ended).toEqual([{ tag: "1", path: "/test.v1.Echo/echo", error: undefined, seconds: 0.01 }]);
    expect(second.ended).toEqual([{ tag: "2", path: "/test.v1.Echo/echo", error: undefined, seconds: 0.01 }]);
  });

  it("registers nothing for a call that did not come through a server", () => {
    const rec = new Recorder();
    const call = {
      method: Echo.methods.echo,
      side: "server",
      signal: new AbortController().signal,
    } as unknown as Call;
    expect(onCallEnd(call, rec, "a")).toBe(false);
  });

  it("tells a watcher registered once the call has ended at once", async () => {
    const rec = new Recorder();
    let kept: Call | undefined;
    const { client } = start({}, [
      (next) => (call) => {
        kept = call;
        return next(call);
      },
    ]);
    await client.echo({ text: "x" });
    await settle();
    expect(onCallEnd(kept!, rec, "late")).toBe(true);
    expect(rec.ended).toEqual([{ tag: "late", path: "/test.v1.Echo/echo", error: undefined, seconds: 0 }]);
  });
});
