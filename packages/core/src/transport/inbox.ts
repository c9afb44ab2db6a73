import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";

/**
 * The receive queue of one stream direction: frames pushed by the connection, messages pulled by an
 * async iterator. Decoding happens on pull, and each pulled message's body size is reported through
 * `onConsumed`, which the connection turns into flow-control credit for the sender. So a reader that
 * stops reading stops the credit, and the sender stops sending: the queue holds at most one window
 * plus the one message that may overdraw it.
 */
export class Inbox<T> implements AsyncIterableIterator<T> {
  readonly #decode: (body: Uint8Array, serializer: number, compressor: number) => T;
  readonly #onConsumed: (bytes: number) => void;
  readonly #onAbandon: (() => void) | undefined;
  // FIFO of pending frames: parallel arrays with a moving head keep pushes cheap.
  #bodies: Uint8Array[] = [];
  #meta: number[] = [];
  #head = 0;
  #ended = false;
  #error: WeftError | undefined;
  #waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  #done = false;

  constructor(
    decode: (body: Uint8Array, serializer: number, compressor: number) => T,
    onConsumed: (bytes: number) => void,
    onAbandon?: () => void,
  ) {
    this.#decode = decode;
    this.#onConsumed = onConsumed;
    this.#onAbandon = onAbandon;
  }

  /** Frames queued and not yet pulled. */
  get length(): number {
    return this.#bodies.length - this.#head;
  }

  push(body: Uint8Array, serializer: number, compressor: number): void {
    if (this.#ended || this.#done) return;
    const waiter = this.#waiting;
    if (waiter !== null && this.length === 0) {
      this.#waiting = null;
      this.#deliver(body, serializer, compressor, waiter);
      return;
    }
    this.#bodies.push(body);
    this.#meta.push(serializer | (compressor << 8));
  }

  /** No more frames will come; `error` fails the reader after what is queued. */
  end(error?: WeftError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiter = this.#waiting;
    if (waiter !== null && this.length === 0) {
      this.#waiting = null;
      this.#finish(waiter);
    }
  }

  /** Fails the reader now, dropping what is queued (cancellation, connection loss). */
  fail(error: WeftError): void {
    this.#bodies = [];
    this.#meta = [];
    this.#head = 0;
    this.#ended = false;
    this.end(error);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    if (this.#waiting !== null) {
      return Promise.reject(new WeftError(Code.FAILED_PRECONDITION, "concurrent next() on a stream"));
    }
    if (this.length > 0) {
      const body = this.#bodies[this.#head]!;
      const meta = this.#meta[this.#head]!;
      this.#bodies[this.#head] = EMPTY;
      this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#bodies.length) {
        this.#bodies = this.#bodies.slice(this.#head);
        this.#meta = this.#meta.slice(this.#head);
        this.#head = 0;
      }
      return new Promise((resolve, reject) =>
        this.#deliver(body, meta & 0xff, meta >> 8, { resolve, reject }),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (this.#ended) this.#finish(waiter);
      else this.#waiting = waiter;
    });
  }

  /**
   * The reader stopped early (`break` in `for await`, or giving up on a `next()` raced against a
   * timeout): the stream is abandoned, and a `next()` still waiting settles as done.
   */
  return(): Promise<IteratorResult<T>> {
    if (!this.#done) {
      this.#done = true;
      this.#bodies = [];
      this.#meta = [];
      this.#head = 0;
      const waiter = this.#waiting;
      this.#waiting = null;
      if (!this.#ended) this.#onAbandon?.();
      waiter?.resolve({ done: true, value: undefined });
    }
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #deliver(
    body: Uint8Array,
    serializer: number,
    compressor: number,
    waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void },
  ): void {
    let value: T;
    try {
      value = this.#decode(body, serializer, compressor);
    } catch (e) {
      this.#done = true;
      this.#onAbandon?.();
      waiter.reject(WeftError.from(e, Code.INVALID_ARGUMENT));
      return;
    }
    this.#onConsumed(body.length);
    waiter.resolve({ done: false, value });
  }

  #finish(waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }): void {
    this.#done = true;
    if (this.#error !== undefined) waiter.reject(this.#error);
    else waiter.resolve({ done: true, value: undefined });
  }
}

const EMPTY = new Uint8Array(0);
