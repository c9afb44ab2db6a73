import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { deferred } from "../../test/deferred.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult, StreamResult } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { defineService, methodsOf, serverStreaming, unary } from "../service/service.ts";
import { ClientCall, type ResponseStream, type RetryRefused } from "./client-call.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<{ n: number }>(), messageType<{ n: number }>()),
  watch: serverStreaming(messageType<{ n: number }>(), messageType<{ n: number }>()),
});
const [get, watch] = methodsOf(Svc) as [Call["method"], Call["method"]];

function unaryCall(options: { signal?: AbortSignal; deadline?: number } = {}): Call {
  return clientCall(get, options);
}

/** A protocol that frames nothing: it records what the lifetime asks of it. */
class ScriptedCall extends ClientCall<string> {
  readonly log: string[] = [];

  constructor(call: Call, retry?: RetryRefused, attempt = 0) {
    super(call, retry, attempt, "weft", undefined);
  }

  protected prepare(message: unknown): string {
    this.log.push("prepare");
    return JSON.stringify(message);
  }
  protected send(out: string): void {
    this.log.push(`send ${out}`);
  }
  protected cancelOnWire(): void {
    this.log.push("cancel");
  }
  protected ended(): void {
    this.log.push("ended");
  }

  answer(n: number): void {
    this.respond({ stream: false, headers: new Metadata(), message: { n }, trailers: new Metadata() });
  }
  answerStream(responses: ResponseStream): void {
    const result: StreamResult = {
      stream: true,
      headers: new Metadata(),
      messages: (async function* () {})(),
      trailers: new Metadata(),
    };
    this.respondStream(result, responses);
  }
  serverEnded(error: WeftError | undefined): void {
    this.finishWith(error);
  }
  pulling(): void {
    this.openRequest();
  }
}

/** Settles to the result or the error, never rejects. */
function outcome(p: Promise<CallResult>): Promise<CallResult | WeftError> {
  return p.catch((e: unknown) => e as WeftError);
}

function recorder(): ResponseStream & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    end: (e) => events.push(`end ${e?.code ?? "ok"}`),
    fail: (e) => events.push(`fail ${e.code}`),
  };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("ClientCall: settled exactly once", () => {
  it("a response then the deadline: the response wins, no cancel goes out", async () => {
    const c = new ScriptedCall(unaryCall({ deadline: Date.now() + 100 }));
    const result = outcome(c.start());
    c.answer(7);
    vi.advanceTimersByTime(200);
    expect(await result).toMatchObject({ message: { n: 7 } });
    expect(c.log).toEqual(["prepare", 'send {"n":1}', "ended"]);
  });

  it("the deadline then a response: DEADLINE_EXCEEDED with deadline-ms, cancelled on the wire once", async () => {
    const deadline = Date.now() + 100;
    const c = new ScriptedCall(unaryCall({ deadline }));
    const result = outcome(c.start());
    vi.advanceTimersByTime(100);
    c.answer(7);
    const e = (await result) as WeftError;
    expect(e.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(e.metadata.get("deadline-ms")).toBe(String(deadline));
    expect(c.log).toEqual(["prepare", 'send {"n":1}', "cancel", "ended"]);
  });

  it("an abort then the connection closing then a response: CANCELLED once, the watcher removed", async () => {
    const controller = new AbortController();
    const c = new ScriptedCall(unaryCall({ signal: controller.signal, deadline: Date.now() + 100 }));
    const result = outcome(c.start());
    controller.abort();
    c.fail(new WeftError(Code.UNAVAILABLE, "connection closed"));
    c.answer(7);
    vi.advanceTimersByTime(200);
    expect(await result).toMatchObject({ code: Code.CANCELLED });
    expect(c.log.filter((l) => l === "cancel" || l === "ended")).toEqual(["cancel", "ended"]);
  });

  it("the connection closing then an abort: the connection's error, nothing sent after it", async () => {
    const controller = new AbortController();
    const c = new ScriptedCall(unaryCall({ signal: controller.signal }));
    const result = outcome(c.start());
    c.fail(new WeftError(Code.UNAVAILABLE, "connection closed"));
    controller.abort();
    expect(await result).toMatchObject({ code: Code.UNAVAILABLE });
    expect(c.log).toEqual(["prepare", 'send {"n":1}', "ended"]);
  });

  it("a spent budget or an aborted signal fails before anything is prepared or sent", async () => {
    const spent = new ScriptedCall(unaryCall({ deadline: Date.now() }));
    expect(await outcome(spent.start())).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    const aborted = new ScriptedCall(unaryCall({ signal: AbortSignal.abort() }));
    expect(await outcome(aborted.start())).toMatchObject({ code: Code.CANCELLED });
    expect([...spent.log, ...aborted.log]).toEqual([]);
  });

  it("after a response stream was handed out, later failures go to the stream, once", async () => {
    const c = new ScriptedCall(unaryCall({ deadline: Date.now() + 100 }));
    const result = c.start();
    const responses = recorder();
    c.answerStream(responses);
    await result;
    vi.advanceTimersByTime(100);
    c.serverEnded(undefined);
    c.fail(new WeftError(Code.UNAVAILABLE, "late"));
    expect(responses.events).toEqual([`fail ${Code.DEADLINE_EXCEEDED}`]);
    expect(c.log.filter((l) => l === "ended")).toHaveLength(1);
  });

  it("the server's error after a stream ends it after what it received", async () => {
    const c = new ScriptedCall(unaryCall());
    const result = c.start();
    const responses = recorder();
    c.answerStream(responses);
    await result;
    c.serverEnded(new WeftError(Code.INTERNAL, "boom"));
    expect(responses.events).toEqual([`end ${Code.INTERNAL}`]);
  });
});

describe("ClientCall: a refused call", () => {
  it("goes back through retry with the next attempt and settles with its outcome", async () => {
    const controller = new AbortController();
    const retried = deferred<CallResult>();
    const retry = vi.fn<RetryRefused>(() => retried.promise);
    const call = unaryCall({ signal: controller.signal, deadline: Date.now() + 100 });
    const c = new ScriptedCall(call, retry, 1);
    const result = outcome(c.start());
    c.refuse(new WeftError(Code.UNAVAILABLE, "going away"));
    expect(retry).toHaveBeenCalledExactlyOnceWith(call, 2);
    // this attempt is over: its timer and watcher are gone
    controller.abort();
    vi.advanceTimersByTime(200);
    c.answer(1);
    const answer = {
      stream: false,
      headers: new Metadata(),
      message: { n: 9 },
      trailers: new Metadata(),
    } as const;
    retried.resolve(answer);
    expect(await result).toBe(answer);
    expect(c.log).toEqual(["prepare", 'send {"n":1}', "ended"]);
  });

  it("fails with its error once the request stream was opened, or without a retry", async () => {
    const retry = vi.fn<RetryRefused>();
    const opened = new ScriptedCall(unaryCall(), retry);
    const first = outcome(opened.start());
    opened.pulling();
    opened.refuse(new WeftError(Code.UNAVAILABLE, "refused"));
    const lone = new ScriptedCall(unaryCall());
    const second = outcome(lone.start());
    lone.refuse(new WeftError(Code.UNAVAILABLE, "refused"));
    expect(await first).toMatchObject({ code: Code.UNAVAILABLE, rawMessage: "refused" });
    expect(await second).toMatchObject({ code: Code.UNAVAILABLE, rawMessage: "refused" });
    expect(retry).not.toHaveBeenCalled();
  });
});

describe("ClientCall: a server-streaming request an interceptor wrapped", () => {
  function wrapped(first: Promise<{ n: number }>, options: { deadline?: number }): Call {
    const messages = (async function* () {
      yield await first;
    })();
    return clientCall(watch, { ...options, messages });
  }

  it("is read within the deadline; nothing is sent when it never comes", async () => {
    const c = new ScriptedCall(wrapped(new Promise(() => {}), { deadline: Date.now() + 100 }));
    const result = outcome(c.start());
    vi.advanceTimersByTime(100);
    expect(await result).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(c.log).toEqual([]);
  });

  it("is read once: the call keeps the message for a resend", async () => {
    const call = wrapped(Promise.resolve({ n: 5 }), {});
    const c = new ScriptedCall(call);
    const result = outcome(c.start());
    await vi.waitFor(() => expect(c.log).toEqual(["prepare", 'send {"n":5}']));
    const again: unknown[] = [];
    if (call.stream) for await (const m of call.messages) again.push(m);
    expect(again).toEqual([{ n: 5 }]);
    c.fail(new WeftError(Code.CANCELLED, "done"));
    expect(await result).toMatchObject({ code: Code.CANCELLED });
  });
});
