/*
 * A subscription of this process as the direct broker runs it: at most `maxInFlight` deliveries
 * outstanding; a message arriving while they all are waits (the sender's `deliver` call with it) until
 * one is acked or nacked, so a slow subscriber slows its publishers down through RPC. A nack hands the
 * message to this same subscription again after its delay: the redelivery lives in this process only.
 */

import type { WeftError } from "@weft/core";
import {
  type AbortWatcher,
  armDeadline,
  type DeadlineTimer,
  NEVER,
  runOutsideCallContext,
  unwatchAbort,
  watchAbort,
} from "@weft/core/internal";
import type { BrokerSubscription, Delivery, DeliverySink, SubscribeSpec } from "../broker.ts";
import type { Envelope } from "../envelope.ts";
import type { Acceptance } from "./service.ts";

/** What a subscription tells the broker that runs it. */
export interface SubscriptionOwner {
  /** It stopped taking deliveries: no longer advertise it. */
  stopped(subscription: LocalSubscription): void;
  /** The sink threw (a bug of the subscriber): the delivery was dropped. */
  sinkFailed(subscription: LocalSubscription, error: unknown): void;
  /**
   * A message nacked for redelivery after the subscription stopped (or while its redelivery was
   * pending): give it to another member of the group, as delivery `attempt`.
   */
  handOver(subscription: LocalSubscription, envelope: Envelope, attempt: number): void;
}

const RESOLVED: Promise<void> = Promise.resolve();

export class LocalSubscription implements BrokerSubscription {
  readonly id: string;
  readonly spec: SubscribeSpec;
  readonly #sink: DeliverySink;
  readonly #owner: SubscriptionOwner;
  #outstanding = 0;
  /** Messages waiting for a free slot, first come first served (redeliveries go first). */
  readonly #waiting: Waiter[] = [];
  /** Nacked messages waiting out their delay, with the attempt they come back as. */
  readonly #redeliveries = new Map<
    DeadlineTimer,
    { readonly envelope: Envelope; readonly attempt: number }
  >();
  #stopped = false;

  constructor(id: string, spec: SubscribeSpec, sink: DeliverySink, owner: SubscriptionOwner) {
    this.id = id;
    this.spec = spec;
    this.#sink = sink;
    this.#owner = owner;
  }

  /** Deliveries handed out and neither acked nor nacked yet. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Messages waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  get isStopped(): boolean {
    return this.#stopped;
  }

  /**
   * Hands `envelope` to the sink once a slot is free: resolves `accepted` then; `gone` when the
   * subscription stopped or `signal` aborted (the sender gave up) first, `timeout` when `deadline`
   * (`Date.now()` milliseconds) passed first. Unless accepted, it was not delivered. `malformed`:
   * its reserved headers did not parse (see `Delivery.malformed`). `attempt`: which delivery this is
   * (above 1 for a message another member of the group handed over).
   */
  accept(
    envelope: Envelope,
    signal: AbortSignal,
    deadline: number,
    malformed?: WeftError | undefined,
    attempt = 1,
  ): Promise<Acceptance> {
    if (this.#stopped || signal.aborted) return Promise.resolve("gone");
    if (this.#outstanding < this.spec.maxInFlight && this.#waiting.length === 0) {
      this.#hand(envelope, attempt, malformed);
      return Promise.resolve("accepted");
    }
    if (Date.now() >= deadline) return Promise.resolve("timeout");
    return new Promise((resolve) => {
      const waiter = new Waiter(this, envelope, attempt, signal, resolve, malformed);
      this.#waiting.push(waiter);
      watchAbort(signal, waiter);
      waiter.timer = armDeadline(deadline, giveUp, waiter);
    });
  }

  /** A waiting message's sender gave up (`gone`) or its time ran out (`timeout`). */
  abandoned(waiter: Waiter, why: Acceptance): void {
    const at = this.#waiting.indexOf(waiter);
    if (at === -1) return;
    this.#waiting.splice(at, 1);
    waiter.end(why);
  }

  /** A delivery was acked or nacked: its slot is free. */
  settled(envelope: Envelope, redeliverAfterMs: number | undefined, attempt: number): void {
    this.#outstanding--;
    if (redeliverAfterMs !== undefined) {
      if (this.#stopped) this.#owner.handOver(this, envelope, attempt + 1);
      else if (redeliverAfterMs > 0) {
        const timer: DeadlineTimer = armDeadline(Date.now() + redeliverAfterMs, () => {
          this.#redeliveries.delete(timer);
          this.#redeliver(envelope, attempt + 1);
        });
        this.#redeliveries.set(timer, { envelope, attempt: attempt + 1 });
      } else this.#redeliver(envelope, attempt + 1);
    }
    this.#pump();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#owner.stopped(this);
    for (const [timer, { envelope, attempt }] of this.#redeliveries) {
      timer.cancel();
      this.#owner.handOver(this, envelope, attempt);
    }
    this.#redeliveries.clear();
    for (const waiter of this.#waiting.splice(0)) {
      if (waiter.redelivery) this.#owner.handOver(this, waiter.envelope, waiter.attempt);
      waiter.end("gone");
    }
  }

  close(): Promise<void> {
    return this.stop();
  }

  #redeliver(envelope: Envelope, attempt: number): void {
    if (this.#stopped) return;
    const waiter = new Waiter(this, envelope, attempt, undefined, ignore, undefined);
    waiter.redelivery = true;
    this.#waiting.unshift(waiter);
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#outstanding < this.spec.maxInFlight && this.#waiting.length > 0) {
      const waiter = this.#waiting.shift()!;
      this.#hand(waiter.envelope, waiter.attempt, waiter.malformed);
      waiter.end("accepted");
    }
  }

  #hand(envelope: Envelope, attempt: number, malformed: WeftError | undefined): void {
    this.#outstanding++;
    const delivery = new DirectDelivery(this, envelope, attempt, malformed);
    // the subscriber's work outlives the deliver call (or the publish) it arrived in: it must not
    // inherit that call's deadline or cancellation
    try {
      runOutsideCallContext(() => this.#sink(delivery));
    } catch (error) {
      void delivery.ack();
      this.#owner.sinkFailed(this, error);
    }
  }
}

/** A message waiting for a free slot; watches its sender's signal and deadline. */
class Waiter implements AbortWatcher {
  readonly subscription: LocalSubscription;
  readonly envelope: Envelope;
  readonly attempt: number;
  readonly signal: AbortSignal;
  readonly resolve: (outcome: Acceptance) => void;
  readonly malformed: WeftError | undefined;
  timer: DeadlineTimer | undefined;
  /** A nacked message of this subscription's own, not a sender's. */
  redelivery = false;

  constructor(
    subscription: LocalSubscription,
    envelope: Envelope,
    attempt: number,
    signal: AbortSignal | undefined,
    resolve: (outcome: Acceptance) => void,
    malformed: WeftError | undefined,
  ) {
    this.subscription = subscription;
    this.envelope = envelope;
    this.attempt = attempt;
    this.signal = signal ?? NEVER;
    this.resolve = resolve;
    this.malformed = malformed;
  }

  handleEvent(): void {
    this.subscription.abandoned(this, "gone");
  }

  /** Stops watching and tells the sender what became of the message. */
  end(outcome: Acceptance): void {
    unwatchAbort(this.signal, this);
    this.timer?.cancel();
    this.resolve(outcome);
  }
}

function giveUp(waiter: Waiter): void {
  waiter.subscription.abandoned(waiter, "timeout");
}

class DirectDelivery implements Delivery {
  readonly envelope: Envelope;
  readonly attempt: number;
  readonly malformed: WeftError | undefined;
  readonly #subscription: LocalSubscription;
  #settled = false;

  constructor(
    subscription: LocalSubscription,
    envelope: Envelope,
    attempt: number,
    malformed: WeftError | undefined,
  ) {
    this.#subscription = subscription;
    this.envelope = envelope;
    this.attempt = attempt;
    this.malformed = malformed;
  }

  ack(): Promise<void> {
    if (!this.#settled) {
      this.#settled = true;
      this.#subscription.settled(this.envelope, undefined, this.attempt);
    }
    return RESOLVED;
  }

  nack(delayMs: number): Promise<void> {
    if (!this.#settled) {
      this.#settled = true;
      this.#subscription.settled(this.envelope, Math.max(0, delayMs), this.attempt);
    }
    return RESOLVED;
  }
}

function ignore(): void {}
