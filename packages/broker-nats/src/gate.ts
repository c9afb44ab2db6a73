/*
 * The bound on a subscription's outstanding deliveries (`SubscribeSpec.maxInFlight`), once for both
 * brokers: messages that arrive while `maxInFlight` are outstanding wait here, in arrival order, and
 * go to the sink as deliveries are settled. Core NATS pushes, so its waiting line has a limit past
 * which messages are dropped; JetStream only pulls what fits, so its line holds at most one pull's
 * surplus.
 */

/** What the gate does with a message: hand it to the sink, or drop it when the line is full. */
export interface GateTarget<T> {
  deliver(item: T): void;
  /** The line was full (`limit` reached): the item is not delivered. */
  overflow(item: T): void;
}

export class DeliveryGate<T> {
  readonly #max: number;
  readonly #limit: number;
  readonly #target: GateTarget<T>;
  readonly #line: T[] = [];
  #outstanding = 0;
  #closed = false;
  #roomWaiters: (() => void)[] = [];

  /**
   * `max`: deliveries outstanding at once; `limit`: messages waiting beyond them (`Infinity` when
   * the producer already bounds them).
   */
  constructor(max: number, limit: number, target: GateTarget<T>) {
    this.#max = max;
    this.#limit = limit;
    this.#target = target;
  }

  /** Deliveries handed out and not yet settled. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** How many more messages fit without waiting: `max` less the outstanding and waiting ones. */
  get room(): number {
    return Math.max(0, this.#max - this.#outstanding - this.#line.length);
  }

  /** Delivers `item` now if a slot is free, else lines it up (or drops it when the line is full). */
  offer(item: T): void {
    if (this.#closed) this.#target.overflow(item);
    else if (this.#outstanding < this.#max && this.#line.length === 0) {
      this.#outstanding++;
      this.#target.deliver(item);
    } else if (this.#line.length < this.#limit) this.#line.push(item);
    else this.#target.overflow(item);
  }

  /** One delivery was settled (acked or nacked): its slot goes to the next in line. */
  release(): void {
    this.#outstanding--;
    const next = this.#closed ? undefined : this.#line.shift();
    if (next !== undefined) {
      this.#outstanding++;
      this.#target.deliver(next);
    }
    if (this.room > 0) this.#wake();
  }

  /** Resolves when `room > 0` (at once if it is), or when the gate closes. */
  whenRoom(): Promise<void> {
    if (this.room > 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** No more deliveries: returns the messages still in line (never delivered) and wakes the waiters. */
  close(): T[] {
    this.#closed = true;
    this.#wake();
    return this.#line.splice(0);
  }

  #wake(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const w of waiters) w();
  }
}
