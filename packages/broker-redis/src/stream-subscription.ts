/*
 * One subscription on Redis Streams, reading on its own connection (blocking reads need one each):
 * a consumer group's member (XREADGROUP, XACK, pending entries recovered with XAUTOCLAIM), or a
 * private reader (XREAD from the streams' ends at subscribe time, at-most-once). A partitioned
 * group reads only the partitions its leases give it.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger, Telemetry } from "@weft/core";
import { armDeadline, backoffDelay, type DeadlineTimer, emit, RECONNECT_DEFAULTS } from "@weft/core/internal";
import {
  type BrokerSubscription,
  type Delivery,
  type DeliverySink,
  partitionDestination,
  type SubscribeSpec,
} from "@weft/messaging";
import type { Redis } from "ioredis";
import { createStreamGroup } from "./dead-letters.ts";
import { unavailable } from "./errors.ts";
import { type LeaseHolder, PartitionLeases } from "./partition-leases.ts";
import type { Scripts } from "./scripts.ts";
import { entryEnvelope } from "./wire.ts";

/** What a subscription needs of its broker. */
export interface SubscriptionHost {
  /** The shared connection for non-blocking commands (XACK, XAUTOCLAIM, scripts, CLIENT UNBLOCK). */
  readonly redis: Redis;
  readonly scripts: Scripts;
  /** A new connection of the subscription's own, connected. */
  readonly reader: () => Promise<Redis>;
  readonly key: (destination: string) => string;
  readonly blockMs: number;
  readonly claimIntervalMs: number | undefined;
  readonly leaseMs: number;
  readonly idleConsumerMs: number;
  readonly logger: Logger;
  readonly telemetry: Telemetry | undefined;
  /** The subscription closed: forget it. */
  readonly closed: (subscription: StreamSubscription) => void;
}

/** The claim state of one stream this subscription reads. */
interface StreamState {
  readonly key: string;
  readonly partition: number | undefined;
  /** XAUTOCLAIM's cursor: where the next recovery pass starts. */
  cursor: string;
  /**
   * Just taken over (a partition's new owner): every pending entry, of any consumer, is claimed and
   * delivered in id order before new entries are read.
   */
  takingOver: boolean;
  /** New entries are read from it (false while taking over, and for a partition being given back). */
  reading: boolean;
  /** A private reader's position: the last id read. */
  lastId: string;
}

interface Outstanding {
  readonly stream: StreamState;
  readonly id: string;
}

/** Raw replies: stream entries as Redis returns them. */
type RawEntry = [id: Buffer, fields: Buffer[] | null];

const unique = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
let consumers = 0;

export class StreamSubscription implements BrokerSubscription, LeaseHolder {
  readonly #host: SubscriptionHost;
  readonly #spec: SubscribeSpec;
  readonly #sink: DeliverySink;
  /** The consumer's name in its group, unique per subscription: `<host>:<pid>:<random>:<n>`. */
  readonly consumer = `${unique}:${++consumers}`;
  readonly #streams = new Map<string, StreamState>();
  readonly #byPartition = new Map<number, StreamState>();
  readonly #outstanding = new Map<string, Outstanding>();
  /** Nacked entries' wake-ups (`#holdBack`), unref'd. */
  readonly #timers = new Set<DeadlineTimer>();
  readonly #leases: PartitionLeases | undefined;
  #reader: Redis | undefined;
  #readerId: string | undefined;
  /** The streams a read in progress covers (their entries may still arrive, so they are busy). */
  #reading: readonly StreamState[] = [];
  #claimDue = true;
  #stopped = false;
  #closing: Promise<void> | undefined;
  #loop: Promise<void> = Promise.resolve();
  #claimTimer: NodeJS.Timeout | undefined;
  /** Resolves the loop's pause (waiting for a free slot, or for something to read). */
  #resume: (() => void) | undefined;
  /** Rotates which streams a read covers when there are fewer free slots than streams. */
  #rotation = 0;
  /** When this subscription last removed its group's idle consumers. */
  #sweptAt = Date.now();

  constructor(host: SubscriptionHost, spec: SubscribeSpec, sink: DeliverySink) {
    this.#host = host;
    this.#spec = spec;
    this.#sink = sink;
    const names =
      spec.partitions === undefined
        ? [spec.destination]
        : Array.from({ length: spec.partitions }, (_, p) => partitionDestination(spec.destination, p));
    const leased = spec.group !== undefined && spec.partitions !== undefined;
    names.forEach((name, i) => {
      const state: StreamState = {
        key: host.key(name),
        partition: spec.partitions === undefined ? undefined : i,
        cursor: "0-0",
        takingOver: false,
        reading: !leased,
        lastId: "$",
      };
      this.#streams.set(state.key, state);
      if (state.partition !== undefined) this.#byPartition.set(state.partition, state);
    });
    if (leased) {
      const group = spec.group!;
      this.#leases = new PartitionLeases(
        {
          scripts: host.scripts,
          tryLease: async (key, holder, ttl) => (await host.redis.set(key, holder, "PX", ttl, "NX")) === "OK",
          membersKey: `${host.key(spec.destination)}:members:${group}`,
          leaseKey: (p) => `${host.key(partitionDestination(spec.destination, p))}:lease:${group}`,
          partitions: spec.partitions!,
          member: this.consumer,
          leaseMs: host.leaseMs,
        },
        this,
      );
    }
  }

  /** Creates the group (or finds the streams' ends), then starts reading. */
  async start(): Promise<void> {
    const redis = this.#host.redis;
    const group = this.#spec.group;
    if (group === undefined) {
      // fix "from now" at subscribe time, so a message published after `subscribe` resolved is read
      await Promise.all(
        [...this.#streams.values()].map(async (s) => {
          const last = (await redis.xrevrange(s.key, "+", "-", "COUNT", 1)) as [string, string[]][];
          s.lastId = last[0]?.[0] ?? "0-0";
        }),
      );
    } else {
      await this.#createGroup(group);
    }
    const reader = await this.#host.reader();
    this.#reader = reader;
    await this.#identify();
    reader.on("ready", () => void this.#identify().catch(() => undefined));
    if (group !== undefined) {
      const interval =
        this.#host.claimIntervalMs ?? Math.max(50, Math.min(5000, Math.floor(this.#spec.ackWaitMs / 2)));
      this.#claimTimer = setInterval(() => {
        this.#claimDue = true;
      }, interval);
      this.#claimTimer.unref();
    }
    if (this.#leases !== undefined) await this.#leases.start();
    this.#loop = this.#run();
  }

  /**
   * XGROUP CREATE ... $ MKSTREAM on every stream: a new group starts at the streams' ends (it is
   * delivered what is published from now on); an existing one is left where it is.
   */
  async #createGroup(group: string): Promise<void> {
    await Promise.all(
      [...this.#streams.values()].map((s) => createStreamGroup(this.#host.redis, s.key, group)),
    );
  }

  async #identify(): Promise<void> {
    this.#readerId = String(await this.#reader!.client("ID"));
  }

  // --- the loop: wait for a free slot, recover pending entries when due, else read new ones ---

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        if (this.#outstanding.size >= this.#spec.maxInFlight) {
          await this.#pause(undefined);
          continue;
        }
        if (this.#claimDue && this.#spec.group !== undefined) {
          this.#claimDue = false;
          await this.#recover();
        } else {
          await this.#read();
        }
        failures = 0;
      } catch (e) {
        if (this.#stopped) break;
        failures++;
        // the stream was deleted under the group (DEL, FLUSHDB): make it again
        if (String(e).includes("NOGROUP")) await this.#createGroup(this.#spec.group!).catch(() => undefined);
        this.#host.logger.warn(
          { destination: this.#spec.destination, group: this.#spec.group, error: String(e) },
          "redis broker: reading failed, trying again",
        );
        await this.#pause(backoffDelay(failures, RECONNECT_DEFAULTS));
      }
    }
  }

  /**
   * Waits until `#wake` or `ms` (forever when undefined). The time is ref'd: the subscription's loop
   * keeps the process alive while it waits out a backoff or a turn with nothing to read.
   */
  #pause(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : armDeadline(Date.now() + ms, done);
      timer?.ref();
      const self = this;
      function done(): void {
        timer?.cancel();
        if (self.#resume === done) self.#resume = undefined;
        resolve();
      }
      this.#resume = done;
    });
  }

  /** Gets the loop going again: ends its pause, or a blocking read in progress (CLIENT UNBLOCK). */
  #wake(): void {
    this.#resume?.();
    if (this.#reading.length > 0 && this.#readerId !== undefined)
      void this.#host.redis.client("UNBLOCK", this.#readerId).catch(() => undefined);
  }

  #free(): number {
    return this.#spec.maxInFlight - this.#outstanding.size;
  }

  /** Reads new entries of the streams being read, blocking up to `blockMs`; never more than the free slots. */
  async #read(): Promise<void> {
    const streams = [...this.#streams.values()].filter((s) => s.reading);
    if (streams.length === 0) {
      await this.#pause(this.#host.blockMs);
      return;
    }
    const free = this.#free();
    // COUNT is per stream: with fewer free slots than streams, read a rotating subset of them
    let chosen = streams;
    if (streams.length > free) {
      const start = this.#rotation++ % streams.length;
      chosen = Array.from({ length: free }, (_, i) => streams[(start + i) % streams.length]!);
    }
    const count = Math.floor(free / chosen.length);
    const keys = chosen.map((s) => s.key);
    const group = this.#spec.group;
    const args: (string | number)[] =
      group === undefined
        ? ["COUNT", count, "BLOCK", this.#host.blockMs, "STREAMS", ...keys, ...chosen.map((s) => s.lastId)]
        : [
            "GROUP",
            group,
            this.consumer,
            "COUNT",
            count,
            "BLOCK",
            this.#host.blockMs,
            "STREAMS",
            ...keys,
            ...keys.map(() => ">"),
          ];
    this.#reading = chosen;
    let reply: unknown;
    try {
      reply = await this.#reader!.callBuffer(group === undefined ? "XREAD" : "XREADGROUP", args);
    } finally {
      this.#reading = [];
    }
    if (reply === null) return;
    for (const [key, entries] of reply as [Buffer, RawEntry[]][]) {
      const stream = this.#streams.get(key.toString())!;
      for (const [id, fields] of entries) {
        const entryId = id.toString();
        if (group === undefined) stream.lastId = entryId;
        if (fields === null) continue;
        // read as the subscription stopped: pending to this consumer, so handed back at once
        if (this.#stopped) await this.#handBack(stream, entryId);
        else this.#deliver(stream, entryId, fields, 1);
      }
    }
  }

  /**
   * One recovery pass (XAUTOCLAIM) over the streams this consumer owns: entries pending longer than
   * `ackWaitMs` (a crashed consumer's, a nacked one whose delay is over), or every pending entry of a
   * partition just taken over. Delivered with the broker's delivery count (XPENDING).
   */
  async #recover(): Promise<void> {
    const group = this.#spec.group!;
    const redis = this.#host.redis;
    if (Date.now() - this.#sweptAt >= this.#host.idleConsumerMs / 2) {
      this.#sweptAt = Date.now();
      for (const stream of this.#streams.values())
        await this.#host.scripts.removeIdleConsumers(stream.key, group, this.#host.idleConsumerMs);
    }
    for (const stream of this.#streams.values()) {
      if (!stream.reading && !stream.takingOver) continue;
      const free = this.#free();
      if (free <= 0 || this.#stopped) {
        this.#claimDue = true;
        return;
      }
      const minIdle = stream.takingOver ? 0 : this.#spec.ackWaitMs;
      const [next, entries] = (await redis.callBuffer("XAUTOCLAIM", [
        stream.key,
        group,
        this.consumer,
        minIdle,
        stream.cursor,
        "COUNT",
        free,
      ])) as [Buffer, RawEntry[]];
      stream.cursor = next.toString();
      // an entry still outstanding here was claimed back: after ackWaitMs without progress it is
      // delivered again (its first delivery is superseded), except while taking a partition over
      const claimed = entries.filter(
        ([id, fields]) =>
          fields !== null && !(stream.takingOver && this.#outstanding.has(key(stream, id.toString()))),
      );
      if (claimed.length > 0) {
        const first = claimed[0]![0].toString();
        const last = claimed[claimed.length - 1]![0].toString();
        const pending = (await redis.xpending(
          stream.key,
          group,
          first,
          last,
          claimed.length + this.#outstanding.size,
          this.consumer,
        )) as [string, string, number, number][];
        const counts = new Map(pending.map(([id, , , n]) => [id, n]));
        if (this.#host.telemetry !== undefined)
          emit(this.#host.telemetry, "subscription.recovered", {
            system: "redis",
            destination: this.#spec.destination,
            group,
            count: claimed.length,
          });
        for (const [id, fields] of claimed) {
          const entryId = id.toString();
          // claimed as the subscription stopped: handed back, as a read's entries are
          if (this.#stopped) await this.#handBack(stream, entryId);
          else this.#deliver(stream, entryId, fields!, counts.get(entryId) ?? 1);
        }
      }
      if (stream.cursor !== "0-0") this.#claimDue = true;
      else if (stream.takingOver) {
        stream.takingOver = false;
        stream.reading = !this.#stopped;
      }
    }
  }

  // --- deliveries ---

  #deliver(stream: StreamState, id: string, fields: Buffer[], attempt: number): void {
    const { envelope, malformed } = entryEnvelope(this.#spec.destination, id, fields);
    const group = this.#spec.group;
    const slot = key(stream, id);
    const mine: Outstanding = { stream, id };
    this.#outstanding.set(slot, mine);
    if (group === undefined) {
      const settle = async (): Promise<void> => {
        this.#settled(slot, mine);
      };
      this.#sink({ envelope, malformed, attempt: 1, ack: settle, nack: settle });
      return;
    }
    let settled = false;
    const delivery: Delivery = {
      envelope,
      malformed,
      attempt,
      ack: async () => {
        if (settled) return;
        settled = true;
        this.#settled(slot, mine);
        await this.#host.redis.xack(stream.key, group, id).catch((e: unknown) => {
          throw unavailable("acknowledge on", this.#spec.destination, e);
        });
      },
      nack: async (delayMs) => {
        if (settled) return;
        settled = true;
        if (this.#outstanding.get(slot) !== mine) return; // superseded: the entry is out again
        this.#settled(slot, mine);
        await this.#holdBack(stream, id, Date.now() + Math.max(0, delayMs)).catch((e: unknown) => {
          throw unavailable("nack on", this.#spec.destination, e);
        });
      },
      progress: () => {
        if (settled || this.#outstanding.get(slot) !== mine) return;
        void this.#host.scripts
          .setIdleIfOwner(stream.key, group, this.consumer, id, 0)
          .catch((e: unknown) =>
            this.#host.logger.warn({ error: String(e) }, "redis broker: progress failed"),
          );
      },
    };
    this.#sink(delivery);
  }

  /** A delivery was settled: its slot is free (unless a later delivery of the entry superseded it). */
  #settled(slot: string, delivery: Outstanding): void {
    if (this.#outstanding.get(slot) !== delivery) return;
    this.#outstanding.delete(slot);
    this.#resume?.();
    if (this.#leases !== undefined && this.#stopped && this.#outstanding.size === 0) void this.#leases.beat();
  }

  /**
   * Keeps a nacked entry pending until `until`: its idle time is set so that it reaches `ackWaitMs`
   * (when any consumer's recovery may claim it) at `until`, and this consumer wakes its own recovery
   * then. A delay longer than `ackWaitMs` is held by resetting the idle time every `ackWaitMs / 2`
   * until the rest fits; after a crash the entry comes back at most `ackWaitMs` later.
   */
  async #holdBack(stream: StreamState, id: string, until: number): Promise<void> {
    const ackWait = this.#spec.ackWaitMs;
    const remaining = until - Date.now();
    const fits = remaining <= ackWait;
    const mine = await this.#host.scripts.setIdleIfOwner(
      stream.key,
      this.#spec.group!,
      this.consumer,
      id,
      fits ? ackWait - Math.max(0, remaining) : 0,
    );
    if (mine === 0 || this.#closing !== undefined) return;
    // from now, not at `until`: the entry's idle time was set as the script ran, after `remaining`
    // was read, so it reaches `ackWait` no sooner than this
    const timer = armDeadline(Date.now() + (fits ? Math.max(0, remaining) : Math.floor(ackWait / 2)), () => {
      this.#timers.delete(timer);
      if (fits) {
        this.#claimDue = true;
        this.#wake();
      } else {
        void this.#holdBack(stream, id, until).catch((e: unknown) =>
          this.#host.logger.warn({ error: String(e) }, "redis broker: holding back a nacked entry failed"),
        );
      }
    });
    this.#timers.add(timer);
  }

  /** Makes a pending entry of this consumer's claimable by any member's next recovery. */
  async #handBack(stream: StreamState, id: string): Promise<void> {
    const group = this.#spec.group;
    if (group === undefined) return;
    await this.#host.scripts.setIdleIfOwner(stream.key, group, this.consumer, id, this.#spec.ackWaitMs);
  }

  // --- partitions (LeaseHolder) ---

  acquired(p: number): void {
    this.#partitionEvent(p, true);
    const stream = this.#byPartition.get(p)!;
    stream.takingOver = true;
    stream.reading = false;
    stream.cursor = "0-0";
    this.#claimDue = true;
    this.#wake();
  }

  leaving(p: number): void {
    const stream = this.#byPartition.get(p)!;
    stream.reading = false;
    stream.takingOver = false;
    this.#wake();
  }

  released(p: number): void {
    this.#partitionEvent(p, false);
  }

  #partitionEvent(partition: number, owned: boolean): void {
    if (this.#host.telemetry === undefined) return;
    emit(this.#host.telemetry, "subscription.partition", {
      system: "redis",
      destination: this.#spec.destination,
      group: this.#spec.group!,
      partition,
      owned,
    });
  }

  busy(p: number): boolean {
    if (this.#reading.some((s) => s.partition === p)) return true;
    for (const o of this.#outstanding.values()) if (o.stream.partition === p) return true;
    return false;
  }

  failed(error: unknown): void {
    this.#host.logger.warn(
      { destination: this.#spec.destination, group: this.#spec.group, error: String(error) },
      "redis broker: partition heartbeat failed",
    );
  }

  // --- lifecycle ---

  /**
   * No delivery is handed out once this returns (entries a read in progress still brings are handed
   * back); the loop itself ends in the background, and `close` waits for it.
   */
  stop(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#stopped = true;
    clearInterval(this.#claimTimer);
    for (const s of this.#streams.values()) s.reading = false;
    this.#wake();
    void this.#leases?.stop();
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.stop();
    await this.#loop;
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
    const group = this.#spec.group;
    const redis = this.#host.redis;
    try {
      if (group !== undefined) {
        // what is still outstanding goes back at once: claimable by any consumer's next recovery
        const back = [...this.#outstanding.values()];
        this.#outstanding.clear();
        await Promise.all(back.map((o) => this.#handBack(o.stream, o.id)));
        await this.#leases?.leave(redis);
        // a consumer with nothing pending is removed from the group (one with nacked entries stays,
        // or its entries would be lost; they are claimed by the others)
        await Promise.all(
          [...this.#streams.values()].map(async (s) => {
            const mine = (await redis.xpending(s.key, group, "-", "+", 1, this.consumer)) as unknown[];
            if (mine.length === 0) await redis.xgroup("DELCONSUMER", s.key, group, this.consumer);
          }),
        );
      }
    } finally {
      this.#reader?.disconnect();
      this.#host.closed(this);
    }
  }
}

function key(stream: StreamState, id: string): string {
  return `${stream.key} ${id}`;
}
