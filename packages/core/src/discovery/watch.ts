import { diffInstances } from "./instance.ts";
import type { Instance, InstanceChange } from "./registry.ts";

/** A pull waiting for the next change. */
interface Waiter {
  resolve(result: IteratorResult<InstanceChange>): void;
  reject(error: unknown): void;
}

/**
 * One watch of one service, shared by the backends: it keeps the set it last pushed, turns each new
 * set into a change (`offer`), queues changes until the consumer pulls them, and calls `onEnd` once
 * when the consumer stops iterating or the registry ends it (`end`, or `fail` with an error the
 * consumer's next pull throws).
 */
export class ServiceWatch implements AsyncIterableIterator<InstanceChange> {
  readonly service: string;
  #seen: Map<string, Instance> | undefined;
  readonly #queue: InstanceChange[] = [];
  #waiter: Waiter | undefined;
  #ended = false;
  /** Set by `fail` until a pull has thrown it. */
  #failure: { error: unknown } | undefined;
  readonly #onEnd: (watch: ServiceWatch) => void;

  constructor(service: string, onEnd: (watch: ServiceWatch) => void) {
    this.service = service;
    this.#onEnd = onEnd;
  }

  /** The service's current set; the first call pushes it whole, later calls push the difference. */
  offer(current: Map<string, Instance>): void {
    if (this.#ended) return;
    const first = this.#seen === undefined;
    const change = first
      ? { added: [...current.values()], updated: [], removed: [] }
      : diffInstances(this.#seen ?? new Map(), current);
    this.#seen = current;
    if (change === undefined) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve({ value: change, done: false });
    } else this.#queue.push(change);
  }

  /** Ends the watch: pending pulls see the end, queued changes are dropped, `onEnd` runs once. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#queue.length = 0;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
    this.#onEnd(this);
  }

  /**
   * Ends the watch with an error: the pending pull, or else the next one, throws `error`; later pulls
   * see the end. Queued changes are dropped and `onEnd` runs once, as with `end`.
   */
  fail(error: unknown): void {
    if (this.#ended) return;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter !== undefined) waiter.reject(error);
    else this.#failure = { error };
    this.end();
  }

  next(): Promise<IteratorResult<InstanceChange>> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
    const failure = this.#failure;
    if (failure !== undefined) {
      this.#failure = undefined;
      return Promise.reject(failure.error);
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<InstanceChange>> {
    this.#failure = undefined;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
