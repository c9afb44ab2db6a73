import { Code, Metadata, Reason, type Telemetry } from "@weft/core";
import { describe, expect, it } from "vitest";
import type { LoadSource } from "./load.ts";
import { shedder } from "./shedder.ts";

function fakeLoad() {
  const l = { cpu: 0, delay: 0 };
  const source: LoadSource = { cpu: () => l.cpu, loopDelayMs: () => l.delay, close() {} };
  return { l, source };
}

const NONE = new Metadata();
const prio = (p: number) => new Metadata({ "weft-priority": String(p) });

/** A shedder that has seen 20 calls of 50 ms complete in each 100 ms bucket for 1 s: maxInFlight 10. */
function trained(events: unknown[] = []) {
  const clock = { t: 0 };
  const { l, source } = fakeLoad();
  const telemetry: Telemetry = { event: (name, a) => events.push([name, a]) };
  const s = shedder({ load: source, now: () => clock.t, telemetry });
  for (let b = 0; b < 10; b++) {
    clock.t = b * 100 + 50;
    for (let i = 0; i < 20; i++) expect(s.admit("/x", NONE)).toBeUndefined();
    for (let i = 0; i < 20; i++) s.finished(50);
  }
  clock.t = 1000;
  return { s, clock, l };
}

/** Admits calls until one is refused; returns how many were admitted. */
function admitUntilShed(s: ReturnType<typeof shedder>, headers = NONE): number {
  let n = 0;
  while (s.admit("/x", headers) === undefined) n++;
  return n;
}

describe("shedder (BBR)", () => {
  it("derives maxInFlight = maxPass × minRT × buckets/s / 1000 from the window", () => {
    const { s } = trained();
    expect(s.stats()).toMatchObject({ maxPass: 20, minRtMs: 50, maxInFlight: 10, inFlight: 0 });
  });

  it("never sheds while not overloaded, however many are in flight", () => {
    const { s } = trained();
    for (let i = 0; i < 100; i++) expect(s.admit("/x", NONE)).toBeUndefined();
  });

  it("sheds above maxInFlight when CPU is over its threshold, or the event loop is late", () => {
    const events: unknown[] = [];
    const { s, l } = trained(events);
    l.cpu = 801;
    expect(admitUntilShed(s)).toBe(11); // in flight 0..10 admitted, the 12th call sees 11 > 10
    const e = s.admit("/x", NONE)!;
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe(Reason.OVERLOADED);
    expect(e.stack).not.toMatch(/\n\s+at /); // made without a stack trace: the cost of a rejection
    expect(events[0]).toEqual([
      "shed.dropped",
      { method: "/x", priority: 5, cpu: 801, loopDelayMs: 0, inFlight: 11, maxInFlight: 10 },
    ]);
    const t2 = trained();
    t2.l.delay = 21;
    expect(admitUntilShed(t2.s)).toBe(11);
    const t3 = trained();
    t3.l.cpu = 800; // at the threshold is not over it
    t3.l.delay = 20;
    for (let i = 0; i < 50; i++) expect(t3.s.admit("/x", NONE)).toBeUndefined();
  });

  it("sheds lower priorities first", () => {
    const counts = [0, 5, 9].map((p) => {
      const { s, l } = trained();
      l.cpu = 1000;
      return admitUntilShed(s, prio(p));
    });
    // limits 10 × 0.5, × 1.0, × 1.4
    expect(counts).toEqual([6, 11, 15]);
  });

  it("keeps shedding over the limit for the 1 s cool-down after the last drop, then stops", () => {
    const { s, l, clock } = trained();
    l.cpu = 900;
    admitUntilShed(s); // dropped at t = 1000 with 11 in flight
    l.cpu = 100; // no longer overloaded
    clock.t += 1000;
    expect(s.admit("/x", NONE)).toBeDefined(); // still 11 in flight > 10, within the cool-down: restarts it
    s.finished(50); // 10 in flight: under the limit again
    expect(s.admit("/x", NONE)).toBeUndefined();
    clock.t += 1000; // 1 s after the last drop: still within the cool-down
    expect(s.admit("/x", NONE)).toBeDefined();
    clock.t += 1001; // cool-down over
    for (let i = 0; i < 20; i++) expect(s.admit("/x", NONE)).toBeUndefined();
    expect(s.stats().dropped).toBe(3);
  });

  it("starts permissive with an empty window, and rejects bad options naming them", () => {
    const { source, l } = fakeLoad();
    l.cpu = 1000;
    const s = shedder({ load: source, now: () => 0 });
    expect(s.stats().maxInFlight).toBe(0);
    expect(admitUntilShed(s)).toBe(2); // at most 1 in flight besides the first
    expect(() => shedder({ load: source, cpuThreshold: -1 })).toThrow(/"cpuThreshold"/);
    expect(() => shedder({ load: source, buckets: 2.5 })).toThrow(/"buckets"/);
    expect(() => shedder({ load: source, defaultPriority: 10 })).toThrow(/"defaultPriority"/);
  });
});
