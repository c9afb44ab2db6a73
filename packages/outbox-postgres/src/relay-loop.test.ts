/**
 * The relays' one retry loop, on a fake clock: rounds that fail without progress wait core's backoff,
 * growing to its maximum; only a round that reported progress starts it over. The polling relay's
 * leader election goes through it too.
 */
import { type Logger, SILENT_LOGGER } from "@weft/core";
import { memoryBroker } from "@weft/messaging";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createPollingRelay } from "./polling-relay.ts";
import { RoundLoop, relaySettings } from "./relay-loop.ts";
import type { ClientPool } from "./sql.ts";

beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(Math, "random").mockReturnValue(0.5); // backoff without jitter
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const backoff = { initialDelayMs: 100, maxDelayMs: 1_000 };

function gaps(times: readonly number[]): number[] {
  return times.slice(1).map((t, i) => t - (times[i] as number));
}

describe("the relays' round loop", () => {
  it("backs off from rounds that fail without progress; a round that progressed starts the backoff over", async () => {
    const settings = relaySettings({ broker: memoryBroker(), backoff, logger: SILENT_LOGGER });
    type Step = (progressed: () => void) => number;
    const fail: Step = () => {
      throw new Error("session ended");
    };
    const steps: Step[] = [
      fail,
      fail,
      fail,
      (progressed) => {
        progressed();
        throw new Error("session ended after confirming a commit");
      },
      fail,
      () => 50, // neither a failure nor progress (the slot is busy): the next failure backs off further
      fail,
      fail,
      fail,
    ];
    const starts: number[] = [];
    const loop = new RoundLoop(settings, async (_signal, progressed) => {
      starts.push(Date.now());
      const step = steps.shift();
      return step === undefined ? 60_000 : step(progressed);
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(10_000);
    await loop.stop();
    expect(gaps(starts)).toEqual([100, 200, 400, 100, 200, 50, 400, 800, 1_000]);
  });
});

describe("the polling relay", () => {
  it("backs off while its leader election fails (the database is down) instead of retrying every leaderRetryMs", async () => {
    let connects = 0;
    const pool = {
      connect: async () => {
        connects++;
        throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
      },
      query: async () => {
        throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
      },
    } as unknown as ClientPool;
    const warnings: string[] = [];
    const logger: Logger = {
      ...SILENT_LOGGER,
      warn: (_fields: unknown, message?: string) => void warnings.push(String(message)),
    } as Logger;
    const relay = createPollingRelay({
      pool,
      broker: memoryBroker(),
      logger,
      backoff: { initialDelayMs: 100, maxDelayMs: 10_000 },
      leaderRetryMs: 1_000,
    });
    relay.start();
    await vi.advanceTimersByTimeAsync(20_000);
    await relay.stop();
    // at 0, 100, 300, 700, 1500, 3100, 6300 and 12700 ms; a fixed 1 s retry would make 21 attempts
    expect(connects).toBe(8);
    expect(warnings).toEqual(Array(8).fill("outbox relay: a round failed"));
  });
});
