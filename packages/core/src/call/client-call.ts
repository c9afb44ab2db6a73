/*
 * The life of one client call, written once for every client transport: the checks before anything
 * is sent, one settlement, one signal watch, one deadline timer, the errors a deadline or an abort
 * makes, and the hand-back of a call the server refused before starting it. A protocol's call
 * extends `ClientCall` and only frames: it encodes the request (`prepare`), puts it on the wire
 * (`send`, and `sendRequestStream` for a streamed request), cancels it there (`cancelOnWire`), and
 * reports what the server answers through `respond`, `respondStream`, `finishWith` and `refuse`.
 */
import { Serializer, type SerializerName } from "../codec/serializer.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import {
  type Call,
  type CallResult,
  closeIterator,
  firstMessage,
  type StreamResult,
  singleMessage,
} from "../interceptor/call.ts";
import type { WireProtocol } from "../telemetry/telemetry.ts";
import { armDeadline, type DeadlineTimer, deadlineExceeded } from "./deadline.ts";
import { type AbortWatcher, abortError, settleWithin, unwatchAbort, watchAbort } from "./signal.ts";

/**
 * Sends a call the server refused before starting it (REFUSED_STREAM: goaway, shutdown) again,
 * elsewhere; `attempt` is 1 for the first resend. The cluster gives it when it starts a call on a node.
 */
export type RetryRefused = (call: Call, attempt: number) => Promise<CallResult>;

/** What the lifetime needs of a call's response stream once the caller holds it (the transports' `Inbox`). */
export interface ResponseStream {
  /** No more messages: `error` fails the reader after what it has received. */
  end(error?: WeftError): void;
  /** Fails the reader now, dropping what it has not read (cancellation, connection loss). */
  fail(error: WeftError): void;
}

/** Where `sendRequestStream` puts the messages of a streamed request: the protocol's framing of them. */
export interface RequestSink {
  /**
   * `undefined` when a message may be sent now; else what to wait for before pulling the next one
   * (flow-control credit, a write queue to drain). It must also settle when the call ends.
   */
  waitToSend(): Promise<void> | undefined;
  /** Encodes and sends one message; throwing fails the call. */
  sendMessage(message: unknown): void;
  /** The request stream is complete: half-close. */
  endRequest(): void;
}

/**
 * One client call on one transport. Settles exactly once: the caller's promise, or once a response
 * stream was handed out, that stream. The call is its own abort watcher and its deadline timer gets
 * it as argument; the promise is made without an executor closure. A call with a signal costs one
 * small listener function (see `watchAbort`), a call without one (`NEVER`) none.
 *
 * `Out` is what `prepare` makes and `send` writes (a frame, a request body).
 */
export abstract class ClientCall<Out> implements AbortWatcher {
  readonly call: Call;
  /** The call's serializer, bound once: its name (codecs, content types) and its wire id. */
  readonly serializer: SerializerName;
  readonly serializerId: number;
  /** How many times this call was refused and sent again before this attempt. */
  readonly attempt: number;
  readonly #retry: RetryRefused | undefined;
  #resolve: ((result: CallResult) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;
  #responses: ResponseStream | undefined;
  #timer: DeadlineTimer | undefined;
  #finished: boolean;
  #requestOpened: boolean;
  /** The request stream `sendRequestStream` is reading, until it ends: closed if the call ends first. */
  #requests: AsyncIterator<unknown> | undefined;

  /**
   * `protocol` and `peer` (the node's address) are recorded on the call, where client interceptors
   * read them once it settles.
   */
  constructor(
    call: Call,
    retry: RetryRefused | undefined,
    attempt: number,
    protocol: WireProtocol,
    peer: string | undefined,
  ) {
    call.protocol = protocol;
    call.peer = peer;
    this.call = call;
    this.serializer = call.serializer;
    this.serializerId = Serializer[call.serializer];
    this.attempt = attempt;
    this.#retry = retry;
    this.#resolve = undefined;
    this.#reject = undefined;
    this.#responses = undefined;
    this.#timer = undefined;
    this.#finished = false;
    this.#requestOpened = false;
    this.#requests = undefined;
  }

  /** True once the call has settled or been abandoned: nothing more is reported. */
  get finished(): boolean {
    return this.#finished;
  }

  /** The response stream handed to the caller, once there is one. */
  get responses(): ResponseStream | undefined {
    return this.#responses;
  }

  /**
   * Runs the call. Resolves with the response (for a streamed response, with its headers or first
   * message); rejects with the call's error.
   */
  start(): Promise<CallResult> {
    const call = this.call;
    if (call.stream && call.method.kind === "server_streaming") {
      const first = firstMessage(call.messages);
      if (first instanceof Promise) return this.#startAfter(first);
      return this.#begin(first);
    }
    return this.#begin(call.stream ? undefined : call.message);
  }

  /**
   * The request of a server-streaming call comes from an iterable that is not a `singleMessage` (an
   * interceptor wrapped it): read it first, within the call's signal and deadline, and keep the
   * message so a resend after a refusal does not read the consumed iterable again.
   */
  async #startAfter(first: Promise<unknown>): Promise<CallResult> {
    const call = this.call;
    const message = await settleWithin(first.catch(asCancelled), call.signal, call.deadline);
    if (call.stream) call.messages = singleMessage(message);
    return this.#begin(message);
  }

  #begin(message: unknown): Promise<CallResult> {
    const call = this.call;
    const deadline = call.deadline;
    // one clock read for the spent-budget check and the budget the request carries
    const now = deadline === undefined ? 0 : Date.now();
    if (deadline !== undefined && deadline <= now) return Promise.reject(deadlineExceeded(deadline));
    if (call.signal.aborted) return Promise.reject(abortError(call.signal));
    let out: Out;
    try {
      out = this.prepare(message, now);
    } catch (e) {
      return Promise.reject(WeftError.from(e, Code.INVALID_ARGUMENT));
    }
    if (call.method.kind === "oneway") {
      const sent = this.sendOneway(out);
      if (sent !== undefined) return sent;
    }
    const promise = new Promise<CallResult>(capture);
    this.#resolve = captured.resolve;
    this.#reject = captured.reject;
    captured.resolve = undefined;
    captured.reject = undefined;
    if (call.deadline !== undefined) this.#timer = armDeadline(call.deadline, expireCall, this);
    watchAbort(call.signal, this);
    // the signal may have aborted the call already (a watcher runs at once for an aborted signal)
    if (!this.#finished) this.send(out);
    return promise;
  }

  /**
   * Encodes what goes out first: the request head and, for a single-message request, `message`
   * (`undefined` for a streamed request). Throwing fails the call before anything is sent
   * (`INVALID_ARGUMENT` unless the error says otherwise). `now` is the `Date.now()` the call's
   * deadline was checked against (0 when it has none): the budget to send is `budgetLeft(deadline, now)`.
   */
  protected abstract prepare(message: unknown, now: number): Out;

  /** Puts what `prepare` made on the wire. The call is timed and watched from now on. */
  protected abstract send(out: Out): void;

  /**
   * Sends a one-way call that expects no answer at all and settles it itself, or returns `undefined`
   * to run it as a call that is answered (the default).
   */
  protected sendOneway(_out: Out): Promise<CallResult> | undefined {
    return undefined;
  }

  /** Tells the server the call is cancelled (the caller aborted, the deadline passed, the reader left). */
  protected abstract cancelOnWire(): void;

  /** Runs once when the call finishes, whatever the outcome: release what the protocol holds for it. */
  protected abstract ended(): void;

  /**
   * The request's message stream is about to be iterated: from now on, a refused call cannot be sent
   * again (the caller's iterator may be in use or partly consumed).
   */
  protected openRequest(): void {
    this.#requestOpened = true;
  }

  /**
   * Sends the request stream of a client-streaming or bidi call through `sink`, after the request
   * head went out. Before pulling each message it waits for `sink.waitToSend()`, so a server that
   * stops reading holds the caller's iterator before it produces a message, not after. When the call
   * ends first (deadline, cancellation, an error, the response complete), the iterator is closed at
   * once (`return()`), even while its `next()` is pending: its `finally` runs and its resources go.
   * An iterator that fails fails the call as `CANCELLED` unless its error says otherwise.
   */
  protected async sendRequestStream(sink: RequestSink): Promise<void> {
    const call = this.call;
    if (!call.stream) return;
    this.openRequest();
    let requests: AsyncIterator<unknown>;
    try {
      requests = call.messages[Symbol.asyncIterator]();
    } catch (e) {
      this.abort(WeftError.from(e, Code.CANCELLED));
      return;
    }
    if (this.#finished) return closeIterator(requests);
    this.#requests = requests;
    for (;;) {
      for (let wait = sink.waitToSend(); wait !== undefined; wait = sink.waitToSend()) {
        await wait;
        if (this.#finished) return; // #finish closed the iterator
      }
      let next: IteratorResult<unknown>;
      try {
        next = await requests.next();
      } catch (e) {
        this.#requests = undefined; // it failed: there is nothing to close
        this.abort(WeftError.from(e, Code.CANCELLED));
        return;
      }
      if (this.#finished) return;
      if (next.done === true) break;
      try {
        sink.sendMessage(next.value);
      } catch (e) {
        // a request message that cannot be encoded (or is over the limit) is the caller's error
        this.abort(WeftError.from(e, Code.INVALID_ARGUMENT));
        return;
      }
    }
    this.#requests = undefined;
    sink.endRequest();
  }

  /** A request body of `bytes` went out (after compression, without framing): added to `call.bytes`, if set. */
  protected countSent(bytes: number): void {
    const tally = this.call.bytes;
    if (tally !== undefined) tally.sent += bytes;
  }

  /** A response body of `bytes` came in, as it was on the wire: added to `call.bytes`, if set. */
  protected countReceived(bytes: number): void {
    const tally = this.call.bytes;
    if (tally !== undefined) tally.received += bytes;
  }

  /** The call completed with `result`. */
  protected respond(result: CallResult): void {
    if (this.#finished) return;
    const resolve = this.#resolve;
    this.#finish();
    resolve?.(result);
  }

  /** The response is a stream: the caller gets `result` now, and later outcomes go to `responses`. */
  protected respondStream(result: StreamResult, responses: ResponseStream): void {
    if (this.#finished || this.#responses !== undefined) return;
    const resolve = this.#resolve;
    this.#resolve = undefined;
    this.#responses = responses;
    resolve?.(result);
  }

  /**
   * The server ended the call: the response stream ends (with `error` after the messages it has
   * received), or, before there is one, the caller's promise rejects with `error`.
   */
  protected finishWith(error: WeftError | undefined): void {
    if (this.#finished) return;
    const responses = this.#responses;
    const reject = this.#reject;
    this.#finish();
    if (responses !== undefined) responses.end(error);
    else if (error !== undefined) reject?.(error);
  }

  /** Fails the call now: what the reader has not read is dropped. */
  fail(error: WeftError): void {
    if (this.#finished) return;
    const responses = this.#responses;
    const reject = this.#reject;
    this.#finish();
    if (responses !== undefined) responses.fail(error);
    else reject?.(error);
  }

  /**
   * The server never started this call (goaway, shutdown, a refused stream). Unless a response came
   * or the request stream was opened, it goes back to whoever started it (the cluster) to be sent
   * again, transparently; otherwise it fails with `error`.
   */
  refuse(error: WeftError): void {
    if (this.#finished) return;
    const retry = this.#retry;
    if (retry === undefined || this.#responses !== undefined || this.#requestOpened) {
      this.fail(error);
      return;
    }
    const resolve = this.#resolve!;
    const reject = this.#reject!;
    this.#finish();
    retry(this.call, this.attempt + 1).then(resolve, reject);
  }

  /** The caller stopped reading the response stream: the call is cancelled, quietly. */
  abandon(): void {
    if (this.#finished) return;
    this.#finish();
    this.cancelOnWire();
  }

  /** Ends the call from this side with `error`: cancelled on the wire, failed for the caller. */
  abort(error: WeftError): void {
    if (this.#finished) return;
    this.cancelOnWire();
    this.fail(error);
  }

  /** The call's signal aborted (this object is its abort watcher). */
  handleEvent(): void {
    this.abort(abortError(this.call.signal));
  }

  /** The call's deadline passed. */
  expire(): void {
    this.#timer = undefined;
    this.abort(deadlineExceeded(this.call.deadline));
  }

  #finish(): void {
    this.#finished = true;
    this.#resolve = undefined;
    this.#reject = undefined;
    if (this.#timer !== undefined) {
      this.#timer.cancel();
      this.#timer = undefined;
    }
    unwatchAbort(this.call.signal, this);
    const requests = this.#requests;
    if (requests !== undefined) {
      this.#requests = undefined;
      closeIterator(requests);
    }
    this.ended();
  }
}

/** The deadline timer's callback: one function for every call, the call passed as its argument. */
function expireCall(call: ClientCall<unknown>): void {
  call.expire();
}

/**
 * Where the shared promise executor leaves a new promise's functions: `new Promise(capture)` then
 * costs no executor closure per call. Read and cleared right after, in the same synchronous step.
 */
const captured: {
  resolve: ((result: CallResult) => void) | undefined;
  reject: ((error: unknown) => void) | undefined;
} = { resolve: undefined, reject: undefined };

function capture(resolve: (result: CallResult) => void, reject: (error: unknown) => void): void {
  captured.resolve = resolve;
  captured.reject = reject;
}

/** A request iterable that failed before its one message fails the call as cancelled by the caller's side. */
function asCancelled(e: unknown): never {
  throw WeftError.from(e, Code.CANCELLED);
}

/**
 * A response the client cannot decode is the server's fault, not the caller's: `INTERNAL` (as gRPC
 * does), keeping the codec's reason; a message over the size limit stays `RESOURCE_EXHAUSTED`.
 */
export function responseDecodeError(e: unknown): WeftError {
  const error = WeftError.from(e, Code.INTERNAL);
  if (error.code !== Code.INVALID_ARGUMENT) return error;
  return new WeftError(Code.INTERNAL, `cannot read the server's response: ${error.rawMessage}`, {
    reason: error.reason,
    cause: error,
  });
}
