/*
 * The in-process broker: every messenger of one process sharing one `memoryBroker()` talks through
 * it, with the semantics of a real broker (queue groups, a copy per group, private subscriptions,
 * wildcards, nack with a delay, delivery counts, prefetch, one active consumer per partition) and no
 * storage: what it holds is lost with the process.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { Code, Reason, WeftError } from "@weft/core";
import { armDeadline, type DeadlineTimer } from "@weft/core/internal";
import type {
  Broker,
  BrokerFeatures,
  BrokerSubscription,
  BrowsedMessage,
  BrowseOptions,
  Delivery,
  DeliverySink,
  Inbox,
  InboxHandlers,
  PublishOptions,
  SubscribeSpec,
} from "./broker.ts";
import { matches } from "./destination.ts";
import type { Envelope } from "./envelope.ts";

/**
 * What `memoryBroker` promises. Not `persistent` and not `atLeastOnce` in the sense of the table in
 * `docs/messaging.md`: a process crash loses every message it holds. Within the process a nacked or
 * abandoned delivery is delivered again to its group (after the nack's delay: `delayedRedelivery`).
 */
export const MEMORY_FEATURES: BrokerFeatures = Object.freeze({
  persistent: false,
  atLeastOnce: false,
  queueGroups: true,
  ordering: true,
  wildcards: true,
  delayedRedelivery: true,
  noResponders: true,
});

/** Options of `memoryBroker`. None yet: the object is reserved for later ones. */
export type MemoryBrokerOptions = Record<string, never>;

/** Inbox addresses start with this token; a publish there goes to the inbox, never to a subscription. */
const INBOX_PREFIX = "_inbox.";

/**
 * An in-process broker, the default for one process and for tests. Shared by any number of
 * messengers of the process.
 *
 * - A group's subscriptions take turns (round-robin among those with a free `maxInFlight` slot);
 *   every group gets its own copy; a private subscription (no group) gets its own copy of what is
 *   published while it is subscribed.
 * - A group exists from its first subscription until the broker closes: a message published while
 *   its subscriptions are all away waits in memory for the next one. A message published to a
 *   destination no group exists for is dropped (a request among them fails with `NO_RESPONDERS`).
 * - `nack(delayMs)` gives the message back to its group after the delay; a subscription closed with
 *   deliveries outstanding gives them back at once. `attempt` counts deliveries to the group.
 * - A partitioned destination's partitions are spread over the group's subscriptions, one active
 *   subscription per partition; a partition moves to another subscription (when one joins or leaves)
 *   only once its outstanding deliveries are settled, and a nacked message goes back to the head of
 *   its partition, so per-key order holds across the group.
 * - `createGroup` makes a group with no subscription yet, which keeps what is published from then on.
 * - `browse` lists a group's messages not acknowledged yet (outstanding deliveries first, then those
 *   waiting); without a group, those of every group that holds the destination's messages.
 */
export function memoryBroker(_options: MemoryBrokerOptions = {}): Broker {
  return new MemoryBroker();
}

interface Queued {
  envelope: Envelope;
  /** Deliveries so far. */
  attempts: number;
  /** Not before this `Date.now()` (a nack with a delay at the head of a partition). */
  notBefore: number;
}

class Member {
  readonly group: Group;
  readonly sink: DeliverySink;
  readonly maxInFlight: number;
  outstanding = 0;
  stopped = false;
  closed = false;
  readonly deliveries = new Set<MemoryDelivery>();
  constructor(group: Group, sink: DeliverySink, maxInFlight: number) {
    this.group = group;
    this.sink = sink;
    this.maxInFlight = maxInFlight;
  }
  get free(): boolean {
    return !this.stopped && this.outstanding < this.maxInFlight;
  }
}

/** A queue of messages: the group's one queue, or one partition's. */
interface Lane {
  readonly items: Queued[];
  /** The member the lane's outstanding deliveries went to (partitions only). */
  owner: Member | undefined;
  outstanding: number;
  /** Wakes the held partition when its head is due (`due`): always the soonest, never a later one. */
  timer: DeadlineTimer | undefined;
  due: number;
}

class Group {
  readonly broker: MemoryBroker;
  readonly pattern: string;
  readonly name: string | undefined;
  readonly partitions: number | undefined;
  readonly members: Member[] = [];
  readonly lanes: Lane[];
  next = 0;
  constructor(broker: MemoryBroker, spec: SubscribeSpec) {
    this.broker = broker;
    this.pattern = spec.destination;
    this.name = spec.group;
    this.partitions = spec.partitions;
    this.lanes = Array.from({ length: spec.partitions ?? 1 }, () => ({
      items: [],
      owner: undefined,
      outstanding: 0,
      timer: undefined,
      due: 0,
    }));
  }

  /** The lane of a published destination, or -1 when it does not match this group's subscriptions. */
  laneOf(destination: string): number {
    if (this.partitions === undefined) return matches(this.pattern, destination) ? 0 : -1;
    const prefix = `${this.pattern}.p`;
    if (!destination.startsWith(prefix)) return -1;
    const p = Number(destination.slice(prefix.length));
    return Number.isInteger(p) && p >= 0 && p < this.partitions ? p : -1;
  }

  /** The member partition `lane` belongs to now (the members in join order, partitions dealt round). */
  assigned(lane: number): Member | undefined {
    const live = this.members.filter((m) => !m.stopped);
    return live.length === 0 ? undefined : live[lane % live.length];
  }

  pump(): void {
    const now = Date.now();
    for (let i = 0; i < this.lanes.length; i++) {
      const lane = this.lanes[i]!;
      while (lane.items.length > 0) {
        const member = this.partitions === undefined ? this.pick() : this.owner(lane, i);
        if (member === undefined) break;
        const head = lane.items[0]!;
        if (head.notBefore > now) {
          // a head due sooner than the timer (a redelivery nacked with a shorter delay) moves it up;
          // one due later leaves it: it wakes early and re-arms. It does not keep the process alive.
          if (lane.timer === undefined || head.notBefore < lane.due) {
            lane.timer?.cancel();
            lane.due = head.notBefore;
            lane.timer = armDeadline(head.notBefore, () => {
              lane.timer = undefined;
              this.pump();
            });
          }
          break;
        }
        lane.items.shift();
        this.deliver(member, lane, head);
      }
    }
  }

  /** Round-robin among the members with a free slot. */
  pick(): Member | undefined {
    const n = this.members.length;
    for (let k = 0; k < n; k++) {
      const m = this.members[(this.next + k) % n]!;
      if (m.free) {
        this.next = (this.next + k + 1) % n;
        return m;
      }
    }
    return undefined;
  }

  /** The member that may take partition `i`'s next message now, if any. */
  owner(lane: Lane, i: number): Member | undefined {
    if (lane.outstanding === 0) lane.owner = this.assigned(i);
    const m = lane.owner;
    return m?.free && m === this.assigned(i) ? m : undefined;
  }

  deliver(member: Member, lane: Lane, item: Queued): void {
    item.attempts++;
    member.outstanding++;
    lane.outstanding++;
    lane.owner = member;
    const delivery = new MemoryDelivery(this, member, lane, item);
    member.deliveries.add(delivery);
    this.broker.outside(member.sink, delivery);
  }

  /** A delivery came back unacknowledged: to the head of its partition, or the tail of the queue. */
  giveBack(lane: Lane, item: Queued, delayMs: number): void {
    if (this.broker.closed) return;
    if (this.name === undefined && this.members.every((m) => m.closed)) return;
    if (this.partitions !== undefined) {
      item.notBefore = Date.now() + delayMs;
      lane.items.unshift(item);
      this.broker.schedule(this);
    } else if (delayMs <= 0) {
      lane.items.push(item);
      this.broker.schedule(this);
    } else {
      const timer = armDeadline(Date.now() + delayMs, () => {
        this.broker.timers.delete(timer);
        lane.items.push(item);
        this.pump();
      });
      this.broker.timers.add(timer);
    }
  }
}

class MemoryDelivery implements Delivery {
  /** The queued message this delivery is of (`browse` reads it). */
  readonly item: Queued;
  readonly envelope: Envelope;
  readonly attempt: number;
  readonly #group: Group;
  readonly #member: Member;
  readonly #lane: Lane;
  #settled = false;
  constructor(group: Group, member: Member, lane: Lane, item: Queued) {
    this.#group = group;
    this.#member = member;
    this.#lane = lane;
    this.item = item;
    this.envelope = item.envelope;
    this.attempt = item.attempts;
  }

  ack(): Promise<void> {
    this.settle(undefined);
    return Promise.resolve();
  }

  nack(delayMs: number): Promise<void> {
    this.settle(Math.max(0, delayMs));
    return Promise.resolve();
  }

  progress(): void {}

  /** Frees the slot; `delayMs` defined: gives the message back after it. False when already settled. */
  settle(delayMs: number | undefined): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#member.outstanding--;
    this.#member.deliveries.delete(this);
    this.#lane.outstanding--;
    if (delayMs !== undefined) this.#group.giveBack(this.#lane, this.item, delayMs);
    this.#group.broker.schedule(this.#group);
    return true;
  }
}

class MemoryBroker implements Broker {
  readonly name = "memory";
  readonly features = MEMORY_FEATURES;
  readonly groups = new Map<string, Group>();
  /**
   * Runs a delivery in the async context the broker was created in, as a network broker's would
   * arrive: never inside the publisher's (its call context, its OpenTelemetry span).
   */
  readonly outside: <A>(fn: (arg: A) => void, arg: A) => void = AsyncLocalStorage.snapshot();
  readonly inboxes = new Map<string, InboxHandlers>();
  readonly timers = new Set<DeadlineTimer>();
  readonly #dirty = new Set<Group>();
  #scheduled = false;
  closed = false;

  publish(envelope: Envelope, options?: PublishOptions): Promise<void> {
    if (this.closed) return Promise.reject(unavailable(envelope.destination));
    if (options?.signal?.aborted) return Promise.reject(options.signal.reason);
    const destination = envelope.destination;
    if (destination.startsWith(INBOX_PREFIX)) {
      const inbox = this.inboxes.get(destination.slice(INBOX_PREFIX.length).split(".")[0]!);
      if (inbox !== undefined) queueMicrotask(() => inbox.onReply(envelope));
      return Promise.resolve();
    }
    let reached = false;
    for (const group of this.groups.values()) {
      const lane = group.laneOf(destination);
      if (lane < 0) continue;
      if (group.members.some((m) => !m.stopped)) reached = true;
      else if (envelope.replyTo !== undefined) continue;
      const delivered =
        group.partitions === undefined ? envelope : { ...envelope, destination: group.pattern };
      group.lanes[lane]!.items.push({ envelope: delivered, attempts: 0, notBefore: 0 });
      this.schedule(group);
    }
    if (!reached && envelope.replyTo !== undefined) this.#noResponders(envelope);
    return Promise.resolve();
  }

  #noResponders(envelope: Envelope): void {
    const replyTo = envelope.replyTo!;
    if (!replyTo.startsWith(INBOX_PREFIX) || envelope.correlationId === undefined) return;
    const inbox = this.inboxes.get(replyTo.slice(INBOX_PREFIX.length).split(".")[0]!);
    const correlationId = envelope.correlationId;
    if (inbox !== undefined) queueMicrotask(() => inbox.onNoResponders(correlationId));
  }

  subscribe(spec: SubscribeSpec, sink: DeliverySink): Promise<BrokerSubscription> {
    if (this.closed) return Promise.reject(unavailable(spec.destination));
    const id =
      spec.group === undefined ? `private:${randomUUID()}` : `${spec.destination}\u0000${spec.group}`;
    const group = this.#groupOf(id, spec);
    const member = new Member(group, sink, spec.maxInFlight);
    group.members.push(member);
    this.schedule(group);
    const g = group;
    return Promise.resolve({
      stop: () => {
        member.stopped = true;
        this.schedule(g);
        return Promise.resolve();
      },
      close: () => {
        if (member.closed) return Promise.resolve();
        member.stopped = true;
        member.closed = true;
        for (const d of [...member.deliveries]) d.settle(0);
        const i = g.members.indexOf(member);
        if (i >= 0) g.members.splice(i, 1);
        if (g.name === undefined) this.groups.delete(id);
        this.schedule(g);
        return Promise.resolve();
      },
    });
  }

  /** Runs the group's dispatch once the current task is done (never inside `publish` or `ack`). */
  schedule(group: Group): void {
    this.#dirty.add(group);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const groups = [...this.#dirty];
      this.#dirty.clear();
      if (!this.closed) for (const g of groups) g.pump();
    });
  }

  #groupOf(id: string, spec: SubscribeSpec): Group {
    let group = this.groups.get(id);
    if (group === undefined) {
      group = new Group(this, spec);
      this.groups.set(id, group);
    }
    return group;
  }

  createGroup(destination: string, group: string): Promise<void> {
    if (this.closed) return Promise.reject(unavailable(destination));
    const spec = { destination, group, maxInFlight: 1, ackWaitMs: 0, partitions: undefined };
    this.#groupOf(`${destination}\u0000${group}`, spec);
    return Promise.resolve();
  }

  browse(destination: string, options: BrowseOptions): Promise<BrowsedMessage[]> {
    if (this.closed) return Promise.reject(unavailable(destination));
    const groups =
      options.group === undefined
        ? [...this.groups.values()].filter((g) => g.name !== undefined)
        : [this.groups.get(`${destination}\u0000${options.group}`)].filter((g) => g !== undefined);
    const seen = new Set<string>();
    const found: BrowsedMessage[] = [];
    for (const group of groups) {
      const outstanding = group.members.flatMap((m) => [...m.deliveries].map((d) => d.item));
      for (const item of [...outstanding, ...group.lanes.flatMap((lane) => lane.items)]) {
        const envelope = item.envelope;
        if (found.length >= options.limit) return Promise.resolve(found);
        if (options.group === undefined && envelope.destination !== destination) continue;
        if (seen.has(envelope.id)) continue;
        seen.add(envelope.id);
        found.push({ envelope });
      }
    }
    return Promise.resolve(found);
  }

  openInbox(handlers: InboxHandlers): Promise<Inbox> {
    if (this.closed) return Promise.reject(unavailable("inbox"));
    const id = randomUUID();
    this.inboxes.set(id, handlers);
    return Promise.resolve({
      address: () => `${INBOX_PREFIX}${id}`,
      close: () => {
        this.inboxes.delete(id);
        return Promise.resolve();
      },
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    for (const g of this.groups.values()) {
      for (const lane of g.lanes) lane.timer?.cancel();
      for (const m of g.members) {
        m.stopped = true;
        m.closed = true;
      }
    }
    this.groups.clear();
    this.inboxes.clear();
    return Promise.resolve();
  }
}

function unavailable(destination: string): WeftError {
  return new WeftError(Code.UNAVAILABLE, `memory broker is closed (destination ${destination})`, {
    reason: Reason.BROKER_UNAVAILABLE,
  });
}
