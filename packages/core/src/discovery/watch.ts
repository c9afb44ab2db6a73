import { diffInstances } from "./instance.ts";
import type { Instance, InstanceChange } from "./registry.ts";

/**
 * One watch of one service, shared by the backends: it keeps the set it last pushed, turns each new
 * set into a change (`offer`), queues changes until the consumer pulls them, and calls `onEnd` once
 * when the consumer stops iterating or the registry ends it.
 */
export class ServiceWatch implements AsyncIterableIterator<InstanceChange> {
  readonly service: string;
  #seen: Map<string, Instance> | undefined;
  readonly #queue: InstanceChange[] = [];
  #waiter: ((result: IteratorResult<InstanceChange>) => void) | undefined;
  #ended = false;
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
      waiter({ value: change, done: false });
    } else this.#queue.push(change);
  }

  /** Ends the watch: pending pulls see the end, queued changes are dropped, `onEnd` runs once. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#queue.length = 0;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.({ value: undefined, done: true });
    this.#onEnd(this);
  }

  next(): Promise<IteratorResult<InstanceChange>> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  return(): Promise<IteratorResult<InstanceChange>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
