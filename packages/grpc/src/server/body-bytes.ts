/*
 * Body bytes of gRPC-web and Connect calls. connect-node frames, compresses and parses their bodies
 * itself, so the bridge counts them on the byte streams it hands connect-node and gets back, and
 * adds them to the call through the door (`OpenCall.countReceived` / `countSent`), as the gRPC and
 * REST front ends do where they read and write bodies.
 */
import type { OpenCall } from "@weft/core/internal";
import { MessageByteCounter } from "../protocol/envelope.ts";

/**
 * What one request's bodies carried, for the call it opens. A unary Connect request is read whole
 * before its handler runs, and so before the call exists: what is read until then is kept and added
 * once the call is opened. A response is counted as connect-node writes it, after the handler
 * returned too (the tally a call adds to lives on; it is its method's).
 */
export class BodyBytes {
  #call: OpenCall | undefined = undefined;
  /** Request bytes read before the call was opened. */
  #received = 0;

  /** Whether a call was opened for the request (one that was refused, or never reached, counts nothing). */
  get opened(): boolean {
    return this.#call !== undefined;
  }

  /** The request opened `call`: it gets what was read so far, and all that follows. */
  open(call: OpenCall): void {
    this.#call = call;
    if (this.#received > 0) {
      call.countReceived(this.#received);
      this.#received = 0;
    }
  }

  received(bytes: number): void {
    const call = this.#call;
    if (call !== undefined) call.countReceived(bytes);
    else this.#received += bytes;
  }

  sent(bytes: number): void {
    this.#call?.countSent(bytes);
  }

  /**
   * `body` as connect-node reads it, counting the message bytes it carries: all of it for a unary
   * Connect body (`enveloped` false, the body is the message), the message frames' bodies otherwise.
   */
  request(body: AsyncIterable<Uint8Array>, enveloped: boolean): AsyncIterable<Uint8Array> {
    return new MeteredBody(body, this, false, enveloped ? new MessageByteCounter() : undefined);
  }

  /** A response body as connect-node writes it, counted as `request` counts. */
  response(body: AsyncIterable<Uint8Array>, enveloped: boolean): AsyncIterable<Uint8Array> {
    return new MeteredBody(body, this, true, enveloped ? new MessageByteCounter() : undefined);
  }
}

/**
 * A byte stream passed through unchanged, each chunk counted as it is taken. `throw` and `return`
 * go to the source as they come, so connect-node's write errors still reach the handler's stream.
 */
class MeteredBody implements AsyncIterableIterator<Uint8Array> {
  readonly #source: AsyncIterable<Uint8Array>;
  #it: AsyncIterator<Uint8Array> | undefined = undefined;
  readonly #bytes: BodyBytes;
  readonly #response: boolean;
  /** Finds the message frames of an enveloped body; `undefined`: the body is one message. */
  readonly #frames: MessageByteCounter | undefined;

  constructor(
    source: AsyncIterable<Uint8Array>,
    bytes: BodyBytes,
    response: boolean,
    frames: MessageByteCounter | undefined,
  ) {
    this.#source = source;
    this.#bytes = bytes;
    this.#response = response;
    this.#frames = frames;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    const result = await this.#iterator().next();
    if (result.done !== true) {
      const chunk = result.value;
      const n = this.#frames === undefined ? chunk.length : this.#frames.push(chunk);
      if (n > 0) {
        if (this.#response) this.#bytes.sent(n);
        else this.#bytes.received(n);
      }
    }
    return result;
  }

  return(value?: unknown): Promise<IteratorResult<Uint8Array>> {
    const it = this.#iterator();
    return it.return === undefined ? Promise.resolve({ done: true, value }) : it.return(value);
  }

  throw(error?: unknown): Promise<IteratorResult<Uint8Array>> {
    const it = this.#iterator();
    return it.throw === undefined ? Promise.reject(error) : it.throw(error);
  }

  #iterator(): AsyncIterator<Uint8Array> {
    this.#it ??= this.#source[Symbol.asyncIterator]();
    return this.#it;
  }
}
