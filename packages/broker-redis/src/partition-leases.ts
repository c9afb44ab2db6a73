/*
 * One active consumer per partition and group: a lease key per partition (SET NX PX, renewed by its
 * holder), and a fair share computed from the group's live members (a heartbeat sorted set). Each
 * member wants the partitions `p` with `p % members == its rank`; it takes a wanted partition whose
 * lease is free, and gives back one it no longer wants once nothing of it is outstanding, so the
 * group converges whenever a member joins, leaves or stops beating.
 */
import type { Scripts } from "./scripts.ts";

/** What the leases tell their subscription and ask it. */
export interface LeaseHolder {
  /** Partition `p` is now this consumer's: finish its pending entries first, then read new ones. */
  acquired(p: number): void;
  /** Stop reading partition `p` (it is wanted elsewhere, or its lease was lost). */
  leaving(p: number): void;
  /** Partition `p` is not this consumer's any more (given back, or its lease lost). */
  released(p: number): void;
  /** Deliveries of partition `p` still outstanding here (its lease is kept until they are settled). */
  busy(p: number): boolean;
  /** A beat failed (Redis unreachable): logged by the holder. */
  failed(error: unknown): void;
}

export interface PartitionLeasesOptions {
  readonly scripts: Scripts;
  /** SET NX PX on the shared connection. */
  readonly tryLease: (leaseKey: string, holder: string, ttlMs: number) => Promise<boolean>;
  readonly membersKey: string;
  readonly leaseKey: (partition: number) => string;
  readonly partitions: number;
  /** This consumer's name, unique in the group. */
  readonly member: string;
  /** Lease and membership time to live; beats come every third of it. */
  readonly leaseMs: number;
}

export class PartitionLeases {
  readonly #o: PartitionLeasesOptions;
  readonly #holder: LeaseHolder;
  /** Partitions whose lease this member holds. */
  readonly #owned = new Set<number>();
  /** Owned partitions being given back (not read any more; released once idle). */
  readonly #leaving = new Set<number>();
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  /** No more partitions taken (the subscription stopped); owned ones are renewed until given back. */
  #stopped = false;
  #left = false;

  constructor(options: PartitionLeasesOptions, holder: LeaseHolder) {
    this.#o = options;
    this.#holder = holder;
  }

  /** Joins the group and takes a first share; then beats every `leaseMs / 3`. */
  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => void this.beat(), Math.max(1, Math.floor(this.#o.leaseMs / 3)));
    this.#timer.unref();
  }

  /** One heartbeat: refresh membership, renew, give back and take leases. Never rejects. */
  beat(): Promise<void> {
    if (this.#left) return Promise.resolve();
    this.#beating ??= this.#beat()
      .catch((e: unknown) => this.#holder.failed(e))
      .finally(() => {
        this.#beating = undefined;
      });
    return this.#beating;
  }

  async #beat(): Promise<void> {
    const o = this.#o;
    // ranked by name, which every member sees alike (the set's scores change with every beat)
    const members = (await o.scripts.heartbeat(o.membersKey, o.member, o.leaseMs)).sort();
    if (this.#left) return;
    const rank = members.indexOf(o.member);
    const n = members.length;
    const wanted = (p: number) => !this.#stopped && rank >= 0 && p % n === rank;
    const steps: Promise<void>[] = [];
    for (let p = 0; p < o.partitions; p++) {
      if (this.#owned.has(p)) {
        if (!wanted(p) && !this.#leaving.has(p)) {
          this.#leaving.add(p);
          this.#holder.leaving(p);
        }
        if (this.#leaving.has(p) && !this.#holder.busy(p)) steps.push(this.#release(p));
        else steps.push(this.#renew(p));
      } else if (wanted(p)) {
        steps.push(this.#take(p));
      }
    }
    await Promise.all(steps);
  }

  async #renew(p: number): Promise<void> {
    if ((await this.#o.scripts.renewLease(this.#o.leaseKey(p), this.#o.member, this.#o.leaseMs)) === 1)
      return;
    // lost (this process stalled past the lease): another member may own it already
    this.#forget(p);
  }

  async #release(p: number): Promise<void> {
    this.#forget(p);
    await this.#o.scripts.releaseLease(this.#o.leaseKey(p), this.#o.member);
  }

  async #take(p: number): Promise<void> {
    if (!(await this.#o.tryLease(this.#o.leaseKey(p), this.#o.member, this.#o.leaseMs))) return;
    if (this.#stopped) {
      await this.#o.scripts.releaseLease(this.#o.leaseKey(p), this.#o.member);
      return;
    }
    this.#owned.add(p);
    this.#holder.acquired(p);
  }

  #forget(p: number): void {
    const wasReading = this.#owned.has(p) && !this.#leaving.has(p);
    this.#owned.delete(p);
    this.#leaving.delete(p);
    if (wasReading) this.#holder.leaving(p);
    this.#holder.released(p);
  }

  /**
   * Stops taking partitions and reading them (the subscription's `stop`); each is given back once its
   * outstanding deliveries are settled, and renewed until then.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#beating;
    for (const p of this.#owned) {
      if (this.#leaving.has(p)) continue;
      this.#leaving.add(p);
      this.#holder.leaving(p);
    }
  }

  /** Leaves the group: drops this member and every lease it holds (after `stop`). */
  async leave(redis: { zrem(key: string, member: string): Promise<unknown> }): Promise<void> {
    await this.stop();
    this.#left = true;
    clearInterval(this.#timer);
    await this.#beating;
    const o = this.#o;
    const owned = [...this.#owned];
    this.#owned.clear();
    this.#leaving.clear();
    for (const p of owned) this.#holder.released(p);
    await Promise.all([
      redis.zrem(o.membersKey, o.member),
      ...owned.map((p) => o.scripts.releaseLease(o.leaseKey(p), o.member)),
    ]);
  }
}
