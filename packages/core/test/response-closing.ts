/**
 * One suite, run over every server protocol: a handler's response stream whose `next()` is pending
 * (a quiet source: `events.on()`, a readable, a generator awaiting) is closed (`return()`) the moment
 * its call ends, without waiting for another message, so what it holds is released at once.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Code, createClient, createServer, type Server, type WeftError } from "../src/index.ts";
import { deferred } from "./deferred.ts";
import { Echo } from "./fixtures.ts";
import { blockedRequests, type RequestClosingHarness } from "./request-closing.ts";

type Ending = "deadline" | "cancel";

/** Registers the suite; `listen` serves `server` in the protocol under test and dials it. */
export function responseClosingSuite(listen: (server: Server) => Promise<RequestClosingHarness>): void {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A server whose `count` and `chat` answer one message, then a `next()` that never settles. */
  async function start() {
    const count = blockedRequests({ i: 1 });
    const chat = blockedRequests({ text: "a" });
    const server = createServer({ onError: () => {} });
    server.register(Echo, {
      echo: (req) => ({ text: req.text }),
      count: () => count.requests,
      sum: async () => ({ total: 0, count: 0 }),
      chat: () => chat.requests,
      notify: () => {},
    });
    const harness = await listen(server);
    cleanups.push(() => server.shutdown({ timeoutMs: 100 }));
    cleanups.push(() => harness.close());
    return { client: createClient(Echo, harness.transport), count: count.closed, chat: chat.closed };
  }

  const outcomes: Record<Ending, Code> = { deadline: Code.DEADLINE_EXCEEDED, cancel: Code.CANCELLED };

  /** Reads `responses`; aborts `controller` after the first message when the ending is a cancel. */
  async function read(responses: AsyncIterable<unknown>, ending: Ending, controller: AbortController) {
    const got: unknown[] = [];
    try {
      for await (const m of responses) {
        got.push(m);
        if (ending === "cancel") controller.abort();
      }
      return { got, code: "ok" as const };
    } catch (e) {
      return { got, code: (e as WeftError).code };
    }
  }

  describe("a response stream pending in next() is closed when its call ends", () => {
    for (const ending of Object.keys(outcomes) as Ending[]) {
      const options = (controller: AbortController) => ({
        signal: controller.signal,
        ...(ending === "deadline" ? { timeoutMs: 200 } : {}),
      });

      it(`server-streaming, ended by ${ending}`, async () => {
        const { client, count } = await start();
        const controller = new AbortController();
        const { got, code } = await read(client.count({ n: 1 }, options(controller)), ending, controller);
        expect(got).toEqual([{ i: 1 }]);
        expect(code).toBe(outcomes[ending]);
        await count;
      });

      it(`bidi, ended by ${ending}`, async () => {
        const { client, chat } = await start();
        const controller = new AbortController();
        const quiet = deferred();
        const requests = (async function* () {
          yield { text: "a" };
          await quiet.promise;
        })();
        const { got, code } = await read(client.chat(requests, options(controller)), ending, controller);
        quiet.resolve();
        expect(got).toEqual([{ text: "a" }]);
        expect(code).toBe(outcomes[ending]);
        await chat;
      });
    }
  });
}
