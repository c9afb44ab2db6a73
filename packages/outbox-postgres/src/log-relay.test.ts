/**
 * The log-tailing relay's sessions on a fake clock, with a stand-in for the replication client: a
 * session the server ends is a failure the relay backs off from (it does not reconnect at once, again
 * and again), and only a session that confirmed a commit starts the backoff over. What it does with
 * the log itself is tested against PostgreSQL in `test/integration/log-relay.test.ts`.
 */
import { SILENT_LOGGER } from "@weft/core";
import { memoryBroker } from "@weft/messaging";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogTailingRelay } from "./log-relay.ts";
import type { ClientPool } from "./sql.ts";

type Listener = (...args: unknown[]) => unknown;
type Session = (emit: (lsn: string, message: unknown) => Promise<void>) => Promise<void>;

const replication = vi.hoisted(() => ({
  /** What each session does before the server ends it (none: it ends at once). */
  sessions: [] as Session[],
  starts: [] as number[],
  acknowledged: [] as string[],
  /** Sessions stay open until stopped, instead of ending a moment after they started. */
  open: false,
}));

vi.mock("pg-logical-replication", () => ({
  PgoutputPlugin: class {},
  LogicalReplicationService: class {
    readonly listeners = new Map<string, Listener[]>();
    on(event: string, listener: Listener) {
      this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
      return this;
    }
    started = false;
    ended = false;
    close: (() => void) | undefined;
    async subscribe() {
      replication.starts.push(Date.now());
      await new Promise((resolve) => setTimeout(resolve, 5)); // connecting
      // as pg's client: ended while connecting, its connect() never settles, nor does subscribe
      if (this.ended) await new Promise<never>(() => undefined);
      this.started = true;
      for (const listener of this.listeners.get("start") ?? []) listener();
      const session = replication.sessions.shift();
      await session?.(async (lsn, message) => {
        for (const listener of this.listeners.get("data") ?? []) await listener(lsn, message);
      });
      if (replication.open) await new Promise<void>((resolve) => (this.close = resolve));
      else await new Promise((resolve) => setTimeout(resolve, 1)); // the session lasts a moment, then ends cleanly
    }
    async acknowledge(lsn: string) {
      replication.acknowledged.push(lsn);
      return true;
    }
    /** As the real client: a stop while connecting closes the connection, and subscribe hangs. */
    async stop() {
      if (this.started) this.close?.();
      else this.ended = true;
      return this;
    }
  },
}));

/** A database whose publication and slot exist, and whose slot nobody streams from. */
const pool: ClientPool = {
  connect: async () => {
    throw new Error("not used");
  },
  query: async (text: string) => {
    if (text.includes("SELECT active")) return { rows: [{ active: false, confirmed: null }], rowCount: 1 };
    if (text.startsWith("SELECT 1")) return { rows: [{}], rowCount: 1 };
    return { rows: [], rowCount: 0 };
  },
} as unknown as ClientPool;

function relay(db: ClientPool = pool) {
  return createLogTailingRelay({
    pool: db,
    connection: "postgres://replicator@127.0.0.1:1/db",
    broker: memoryBroker(),
    logger: SILENT_LOGGER,
    backoff: { initialDelayMs: 100, maxDelayMs: 1_000 },
    statusIntervalMs: 60_000,
  });
}

function gaps(times: readonly number[]): number[] {
  return times.slice(1).map((t, i) => t - (times[i] as number));
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(Math, "random").mockReturnValue(0.5); // backoff without jitter
  replication.sessions = [];
  replication.starts = [];
  replication.acknowledged = [];
  replication.open = false;
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("log-tailing relay sessions", () => {
  it("backs off from sessions the server ends without progress instead of reconnecting at once", async () => {
    const r = relay();
    r.start();
    await vi.advanceTimersByTimeAsync(3_000);
    await r.stop();
    // each session takes 6 ms, then waits 100, 200, 400, 800, 1,000 (the maximum) before the next
    expect(gaps(replication.starts)).toEqual([106, 206, 406, 806, 1_006]);
  });

  it("starts the backoff over after a session that confirmed a commit", async () => {
    const end: Session = async () => undefined;
    const commit: Session = async (emit) => {
      await emit("0/1000", { tag: "begin", commitLsn: "0/2000", commitTime: 0n, xid: 7 });
      await emit("0/2000", {
        tag: "commit",
        flags: 0,
        commitLsn: "0/2000",
        commitEndLsn: "0/2030",
        commitTime: 0n,
      });
    };
    replication.sessions = [end, end, commit, end, end];
    const r = relay();
    r.start();
    await vi.advanceTimersByTimeAsync(1_100);
    await r.stop();
    expect(gaps(replication.starts)).toEqual([106, 206, 106, 206, 406]);
    expect(r.confirmedLsn).toBe("0/2030");
    expect(replication.acknowledged).toContain("0/202F"); // the commit's end, less the one the client adds
  });

  it("opens no session once stopped while setting one up", async () => {
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const slow = {
      ...pool,
      query: async (text: string, values?: unknown[]) => {
        if (text.includes("SELECT active")) await held; // the stop arrives while the slot is looked at
        return pool.query(text, values);
      },
    } as ClientPool;
    const r = relay(slow);
    r.start();
    await vi.advanceTimersByTimeAsync(0);
    const stopped = r.stop();
    answer();
    await stopped;
    expect(replication.starts).toEqual([]);
  });

  it("says it is streaming only once the server has started replication, not while it asks", async () => {
    replication.open = true;
    const r = relay();
    r.start();
    await vi.advanceTimersByTimeAsync(2); // subscribed, still connecting (5 ms)
    expect(replication.starts).toHaveLength(1);
    expect(r.streaming).toBe(false);
    await vi.advanceTimersByTimeAsync(5);
    expect(r.streaming).toBe(true);
    await r.stop();
    expect(r.streaming).toBe(false);
  });

  it("ends a session stopped while its connection was being opened, though subscribe never settles", async () => {
    replication.open = true;
    const r = relay();
    r.start();
    await vi.advanceTimersByTimeAsync(2);
    let stopped = false;
    const stopping = r.stop().then(() => (stopped = true)); // while connecting
    await vi.advanceTimersByTimeAsync(10);
    expect(stopped).toBe(true);
    await stopping;
    expect(replication.starts).toHaveLength(1);
    expect(r.streaming).toBe(false);
  });
});
