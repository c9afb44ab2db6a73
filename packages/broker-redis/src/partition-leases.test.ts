/**
 * The lease logic alone, over an in-memory stand-in for Redis's leases and member set and a fake
 * clock: the fair share, giving back only when idle, taking what is free, losing a lease.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type LeaseHolder, PartitionLeases } from "./partition-leases.ts";
import type { Scripts } from "./scripts.ts";

/** Leases (key → holder) and the group's members, as Redis would keep them. */
class FakeRedis {
  readonly leases = new Map<string, string>();
  members: string[] = [];
  scripts(): Scripts {
    return {
      heartbeat: async (_key, member) => {
        if (!this.members.includes(member)) this.members.push(member);
        return [...this.members].sort();
      },
      renewLease: async (key, holder) => (this.leases.get(key) === holder ? 1 : 0),
      releaseLease: async (key, holder) =>
        this.leases.get(key) === holder && this.leases.delete(key) ? 1 : 0,
      setIdleIfOwner: async () => 0,
      removeIdleConsumers: async () => 0,
      addOnce: async () => "0-0",
    };
  }
  tryLease = async (key: string, holder: string): Promise<boolean> => {
    if (this.leases.has(key)) return false;
    this.leases.set(key, holder);
    return true;
  };
  zrem = async (_key: string, member: string): Promise<void> => {
    this.members = this.members.filter((m) => m !== member);
  };
}

/** A holder that records what it is told; `busy` partitions are set by the test. */
function holder() {
  const log: string[] = [];
  const busy = new Set<number>();
  const h: LeaseHolder = {
    acquired: (p) => log.push(`+${p}`),
    leaving: (p) => log.push(`~${p}`),
    released: (p) => log.push(`-${p}`),
    busy: (p) => busy.has(p),
    failed: (e) => log.push(`! ${String(e)}`),
  };
  return { h, log, busy };
}

const LEASE_MS = 300;
let redis: FakeRedis;
beforeEach(() => {
  vi.useFakeTimers();
  redis = new FakeRedis();
});
afterEach(() => vi.useRealTimers());

function member(name: string, h: LeaseHolder, partitions = 4): PartitionLeases {
  return new PartitionLeases(
    {
      scripts: redis.scripts(),
      tryLease: redis.tryLease,
      membersKey: "m",
      leaseKey: (p) => `lease:${p}`,
      partitions,
      member: name,
      leaseMs: LEASE_MS,
    },
    h,
  );
}

const owners = () => [0, 1, 2, 3].map((p) => redis.leases.get(`lease:${p}`));

describe("PartitionLeases", () => {
  it("a lone member takes every partition; a second one gets its share once the first gives it back", async () => {
    const a = holder();
    const b = holder();
    const la = member("a", a.h);
    await la.start();
    expect(owners()).toEqual(["a", "a", "a", "a"]);
    expect(a.log).toEqual(["+0", "+1", "+2", "+3"]);

    a.busy.add(1); // a still has a delivery of partition 1 outstanding
    const lb = member("b", b.h);
    await lb.start(); // b wants 1 and 3, both still a's
    expect(b.log).toEqual([]);
    await la.beat(); // a stops reading 1 and 3, gives back 3 at once and keeps 1 while busy
    expect(a.log.slice(4)).toEqual(["~1", "~3", "-3"]);
    expect(owners()).toEqual(["a", "a", "a", undefined]);
    await lb.beat();
    expect(b.log).toEqual(["+3"]);

    a.busy.delete(1);
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3); // both beat: a gives back 1, b takes it
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(owners()).toEqual(["a", "b", "a", "b"]);
    expect(a.log.at(-1)).toBe("-1");
    expect(b.log).toEqual(["+3", "+1"]);
    await la.leave(redis);
    await lb.leave(redis);
  });

  it("a member that leaves drops its leases and its membership; the other takes everything", async () => {
    const a = holder();
    const b = holder();
    const la = member("a", a.h);
    const lb = member("b", b.h);
    await la.start();
    await lb.start();
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    expect(owners()).toEqual(["a", "b", "a", "b"]);
    const before = a.log.length;
    await la.leave(redis);
    expect(redis.members).toEqual(["b"]);
    expect(a.log.slice(before).filter((x) => x.startsWith("-"))).toEqual(["-0", "-2"]);
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(owners()).toEqual(["b", "b", "b", "b"]);
    await lb.leave(redis);
    expect(redis.leases.size).toBe(0);
  });

  it("a lease lost while held (taken over after a stall) is given up at the next renewal", async () => {
    const a = holder();
    const la = member("a", a.h, 1);
    await la.start();
    redis.leases.set("lease:0", "someone else");
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(a.log).toEqual(["+0", "~0", "-0"]);
    await la.leave(redis);
    expect(redis.leases.get("lease:0")).toBe("someone else");
  });

  it("after stop it takes nothing new, and gives back each partition once idle", async () => {
    const a = holder();
    const la = member("a", a.h, 2);
    await la.start();
    a.busy.add(0);
    await la.stop();
    expect(a.log).toEqual(["+0", "+1", "~0", "~1"]);
    await la.beat();
    expect(owners().slice(0, 2)).toEqual(["a", undefined]);
    a.busy.delete(0);
    await la.beat();
    expect(owners().slice(0, 2)).toEqual([undefined, undefined]);
    await la.leave(redis);
  });
});
