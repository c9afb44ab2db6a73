/**
 * One suite, run over every client transport: a request stream whose `next()` is blocked in `await`
 * (the caller has nothing to send yet) is closed (`return()`) when its call ends, whatever ends it,
 * so what it holds (listeners, a queue, an upstream call) is released at once.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Code, createClient, createServer, type Server, type Transport, WeftError } from "../src/index.ts";
import { aborted, deferred } from "./deferred.ts";
import { Echo } from "./fixtures.ts";

export interface RequestClosingHarness {
  readonly transport: Transport;
  close(): Promise<void>;
}

/**
 * An async iterator like `events.on()` or a queue: the first `next()` gives `first`, later ones wait
 * until a value comes, or until `return()` is called, which settles the waiting `next()` as done.
 */
export function blockedRequests<T>(first: T): {
  requests: AsyncIterableIterator<T>;
  /** Resolves when `return()` was called. */
  closed: Promise<void>;
} {
  const closed = deferred();
  let pulls = 0;
  let waiting: ((r: IteratorResult<T>) => void) | undefined;
  const requests: AsyncIterableIterator<T> = {
    next() {
      if (++pulls === 1) return Promise.resolve({ done: false, value: first });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return() {
      waiting?.({ done: true, value: undefined });
      closed.resolve();
      return Promise.resolve({ done: true, value: undefined });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return { requests, closed: closed.promise };
}

type Ending = "deadline" | "cancel" | "server error" | "response";

/** Registers the suite; `listen` serves `server` in the protocol under test and dials it. */
export function requestClosingSuite(listen: (server: Server) => Promise<RequestClosingHarness>): void {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A server whose `sum` and `chat` read one request, then end as `ending` says. */
  async function start(ending: Ending) {
    const firstRead = deferred();
    const afterFirst = async (signal: AbortSignal) => {
      firstRead.resolve();
      if (ending === "server error")
        throw new WeftError(Code.FAILED_PRECONDITION, "no more", { reason: "ENOUGH" });
      if (ending !== "response") await aborted(signal);
    };
    const server = createServer({ onError: () => {} });
    server.register(Echo, {
      echo: (req) => ({ text: req.text }),
      count: async function* () {},
      async sum(requests, ctx) {
        for await (const _ of requests) break;
        await afterFirst(ctx.signal);
        return { total: 1, count: 1 };
      },
      async *chat(requests, ctx) {
        for await (const m of requests) {
          yield m;
          break;
        }
        await afterFirst(ctx.signal);
      },
      notify: () => {},
    });
    const harness = await listen(server);
    cleanups.push(() => server.shutdown({ timeoutMs: 100 }));
    cleanups.push(() => harness.close());
    return { client: createClient(Echo, harness.transport), firstRead: firstRead.promise };
  }

  const outcomes: Record<Ending, Code | "ok"> = {
    deadline: Code.DEADLINE_EXCEEDED,
    cancel: Code.CANCELLED,
    "server error": Code.FAILED_PRECONDITION,
    response: "ok",
  };

  describe("a request stream blocked in await is closed when its call ends", () => {
    for (const ending of Object.keys(outcomes) as Ending[]) {
      it(`client-streaming, ended by ${ending}`, async () => {
        const { client, firstRead } = await start(ending);
        const { requests, closed } = blockedRequests({ n: 1 });
        const controller = new AbortController();
        const timeoutMs = ending === "deadline" ? 200 : undefined;
        const reply = client
          .sum(requests, { signal: controller.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
          .then(
            () => "ok" as const,
            (e: unknown) => (e as WeftError).code,
          );
        await firstRead;
        if (ending === "cancel") controller.abort();
        expect(await reply).toBe(outcomes[ending]);
        await closed;
      });

      it(`bidi, ended by ${ending}`, async () => {
        const { client, firstRead } = await start(ending);
        const { requests, closed } = blockedRequests({ text: "a" });
        const controller = new AbortController();
        const timeoutMs = ending === "deadline" ? 200 : undefined;
        const gotFirst = deferred();
        const replies = (async () => {
          try {
            for await (const _ of client.chat(requests, {
              signal: controller.signal,
              ...(timeoutMs === undefined ? {} : { timeoutMs }),
            }))
              gotFirst.resolve();
            return "ok";
          } catch (e) {
            return (e as WeftError).code;
          }
        })();
        await firstRead;
        if (ending === "cancel") {
          await gotFirst.promise;
          controller.abort();
        }
        expect(await replies).toBe(outcomes[ending]);
        await closed;
      });
    }
  });
}
