import {
  type Call,
  type CallResult,
  Code,
  ConfigError,
  defineService,
  Metadata,
  messageType,
  Reason,
  type Telemetry,
  unary,
  WeftError,
  type WeftEventName,
} from "@weft/core";
import { describe, expect, it, vi } from "vitest";
import { type Deferred, deferred } from "../../../core/test/deferred.ts";
import { clientCall } from "../../test/call.ts";
import { type BreakerOptions, breakerSettings, createBreaker } from "./breaker.ts";
import { circuitBreaker } from "./interceptor.ts";
import {
  adaptiveThrottling,
  consecutiveFailures,
  failureRatio,
  slowCallRatio,
  type TripRule,
} from "./rules.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<unknown>(), messageType<unknown>()),
  put: unary(messageType<unknown>(), messageType<unknown>()),
});

const unavailable = () => new WeftError(Code.UNAVAILABLE, "down");

/** A fake clock, a recording telemetry, and a client call of `method`. */
function harness() {
  const clock = { t: 1_000_000 };
  const events: string[] = [];
  const telemetry: Telemetry = {
    event(name: WeftEventName, attributes: unknown) {
      const a = attributes as { name?: string; from?: string; to?: string };
      events.push(name === "breaker.state" ? `${a.name}: ${a.from} → ${a.to}` : `${name} ${a.name}`);
    },
  };
  return { clock, events, telemetry, now: () => clock.t };
}

/** The method info of `name`, as a client builds it (one object per method). */
const methods = Object.fromEntries(
  (["get", "put"] as const).map((name) => [
    name,
    { ...Svc.methods[name], service: Svc, name, path: `/test.Svc/${name}`, proto: undefined },
  ]),
) as unknown as Record<"get" | "put", Call["method"]>;

function call(method: "get" | "put" = "get"): Call {
  return clientCall(methods[method]);
}

const ok: CallResult = { stream: false, headers: new Metadata(), message: "ok", trailers: new Metadata() };

/** A dependency the test drives: each call fails with `error` when set, and takes `latency` ms on the fake clock. */
function dependency(clock: { t: number }) {
  const dep = {
    error: undefined as Error | undefined,
    latency: 0,
    calls: 0,
    handler: async (_call: Call): Promise<CallResult> => {
      dep.calls++;
      clock.t += dep.latency;
      if (dep.error !== undefined) throw dep.error;
      return ok;
    },
  };
  return dep;
}

/** Runs one call through `handler`: "ok", "failed" (the dependency's error) or "rejected" (CIRCUIT_OPEN). */
async function outcome(
  handler: (call: Call) => Promise<CallResult>,
  method?: "get" | "put",
): Promise<string> {
  try {
    await handler(call(method));
    return "ok";
  } catch (e) {
    return e instanceof WeftError && e.reason === Reason.CIRCUIT_OPEN ? "rejected" : "failed";
  }
}

describe("circuitBreaker: states", () => {
  it("opens on its rule, rejects locally for openMs, lets one probe through, and closes on its success", async () => {
    const { clock, events, telemetry, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({
      rule: consecutiveFailures({ failures: 3 }),
      openMs: 1000,
      now,
      telemetry,
    })(dep.handler);
    dep.error = unavailable();
    expect([await outcome(handler), await outcome(handler), await outcome(handler)]).toEqual([
      "failed",
      "failed",
      "failed",
    ]);
    expect(await outcome(handler)).toBe("rejected");
    expect(dep.calls).toBe(3);
    clock.t += 999;
    expect(await outcome(handler)).toBe("rejected");
    clock.t += 1;
    dep.error = undefined;
    expect(await outcome(handler)).toBe("ok");
    expect(await outcome(handler)).toBe("ok");
    expect(events).toEqual([
      "/test.Svc/get: closed → open",
      "breaker.rejected /test.Svc/get",
      "breaker.rejected /test.Svc/get",
      "/test.Svc/get: open → half-open",
      "/test.Svc/get: half-open → closed",
    ]);
  });

  it("counts a call whose next handler throws at once as one that rejects", async () => {
    const { now } = harness();
    const throws = (_call: Call): Promise<CallResult> => {
      throw unavailable();
    };
    const handler = circuitBreaker({ rule: consecutiveFailures({ failures: 2 }), now })(throws);
    const first = handler(call());
    expect(first).toBeInstanceOf(Promise);
    await expect(first).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(await outcome(handler)).toBe("failed");
    expect(await outcome(handler)).toBe("rejected");
  });

  it("reopens when a probe fails, for another openMs", async () => {
    const { clock, events, telemetry, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({
      rule: consecutiveFailures({ failures: 1 }),
      openMs: 500,
      now,
      telemetry,
    })(dep.handler);
    dep.error = unavailable();
    await outcome(handler);
    clock.t += 500;
    expect(await outcome(handler)).toBe("failed");
    expect(await outcome(handler)).toBe("rejected");
    clock.t += 499;
    expect(await outcome(handler)).toBe("rejected");
    clock.t += 1;
    dep.error = undefined;
    expect(await outcome(handler)).toBe("ok");
    expect(events.filter((e) => e.includes("→"))).toEqual([
      "/test.Svc/get: closed → open",
      "/test.Svc/get: open → half-open",
      "/test.Svc/get: half-open → open",
      "/test.Svc/get: open → half-open",
      "/test.Svc/get: half-open → closed",
    ]);
  });

  it("admits only `probes` calls at once while half-open, and needs that many successes to close", () => {
    const { clock, now } = harness();
    const breaker = createBreaker(
      "b",
      breakerSettings({ rule: consecutiveFailures({ failures: 1 }), probes: 2, openMs: 100, now }),
    );
    breaker.done(breaker.take(), true, 1, now());
    expect(breaker.state).toBe("open");
    clock.t += 100;
    expect(breaker.admits()).toBe(true);
    const first = breaker.take();
    expect(breaker.state).toBe("half-open");
    expect(breaker.admits()).toBe(true);
    const second = breaker.take();
    expect(breaker.admits()).toBe(false);
    breaker.done(first, false, 1, now());
    expect(breaker.state).toBe("half-open");
    expect(breaker.admits()).toBe(false);
    breaker.done(second, false, 1, now());
    expect(breaker.state).toBe("closed");
  });

  it("counts only the failures of isFailure: a business NOT_FOUND or INVALID_ARGUMENT does not trip it", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({ rule: consecutiveFailures({ failures: 2 }), now })(dep.handler);
    dep.error = new WeftError(Code.NOT_FOUND, "no such item");
    for (let i = 0; i < 5; i++) expect(await outcome(handler)).toBe("failed");
    dep.error = new WeftError(Code.INVALID_ARGUMENT, "bad");
    for (let i = 0; i < 5; i++) expect(await outcome(handler)).toBe("failed");
    const custom = circuitBreaker({
      rule: consecutiveFailures({ failures: 2 }),
      now,
      isFailure: (e) => e instanceof WeftError && e.code === Code.NOT_FOUND,
    })(dep.handler);
    dep.error = new WeftError(Code.NOT_FOUND, "no such item");
    expect([await outcome(custom), await outcome(custom), await outcome(custom)]).toEqual([
      "failed",
      "failed",
      "rejected",
    ]);
  });

  it("does not count a call refused by a server going away (a graceful restart is not a failing node)", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({ rule: consecutiveFailures({ failures: 2 }), now })(dep.handler);
    for (const reason of [Reason.REFUSED_STREAM, Reason.SHUTTING_DOWN]) {
      dep.error = new WeftError(Code.UNAVAILABLE, "server is going away", { reason });
      for (let i = 0; i < 5; i++) expect(await outcome(handler)).toBe("failed");
    }
    dep.error = unavailable();
    expect([await outcome(handler), await outcome(handler), await outcome(handler)]).toEqual([
      "failed",
      "failed",
      "rejected",
    ]);
  });

  it("keeps one breaker per method, or one per service", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    dep.error = unavailable();
    const perMethod = circuitBreaker({ rule: consecutiveFailures({ failures: 1 }), now })(dep.handler);
    await outcome(perMethod, "get");
    expect(await outcome(perMethod, "get")).toBe("rejected");
    expect(await outcome(perMethod, "put")).toBe("failed");
    const perService = circuitBreaker({ rule: consecutiveFailures({ failures: 1 }), now, scope: "service" })(
      dep.handler,
    );
    await outcome(perService, "get");
    expect(await outcome(perService, "put")).toBe("rejected");
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    const rule = consecutiveFailures();
    const bad: [BreakerOptions & { scope?: unknown }, RegExp][] = [
      [{} as BreakerOptions, /rule/],
      [{ rule, openMs: -1 }, /openMs/],
      [{ rule, probes: 0 }, /probes/],
      [{ rule, scope: "node" }, /scope/],
    ];
    for (const [options, name] of bad) {
      expect(() => circuitBreaker(options as BreakerOptions)).toThrow(ConfigError);
      expect(() => circuitBreaker(options as BreakerOptions)).toThrow(name);
    }
    expect(() => consecutiveFailures({ failures: 1.5 })).toThrow(/failures/);
    expect(() => failureRatio({ ratio: 1.5 })).toThrow(/ratio/);
    expect(() => slowCallRatio({ ratio: 0.3 } as never)).toThrow(/slowCallMs/);
    expect(() => adaptiveThrottling({ k: 0.5 })).toThrow(/k/);
  });
});

describe("trip rules", () => {
  it("consecutive failures: a success starts the count again", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({ rule: consecutiveFailures({ failures: 3 }), now })(dep.handler);
    for (const error of [unavailable(), unavailable(), undefined, unavailable(), unavailable()]) {
      dep.error = error;
      await outcome(handler);
    }
    expect(await outcome(handler)).toBe("failed");
    expect(await outcome(handler)).toBe("rejected");
  });

  it("failure ratio: needs minRequests in the window, trips at the ratio, forgets buckets that slid out", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const rule = failureRatio({ windowMs: 10_000, buckets: 10, ratio: 0.5, minRequests: 10 });
    const handler = circuitBreaker({ rule, now })(dep.handler);
    dep.error = unavailable();
    for (let i = 0; i < 9; i++) expect(await outcome(handler)).toBe("failed"); // 9 < minRequests
    clock.t += 10_000; // those 9 slid out of the window
    for (let i = 0; i < 6; i++) {
      dep.error = undefined;
      await outcome(handler);
      dep.error = i < 4 ? unavailable() : undefined;
      expect(await outcome(handler)).not.toBe("rejected");
    } // 12 calls, 4 failed: 33%
    dep.error = unavailable();
    expect(await outcome(handler)).toBe("failed"); // 13, 5 failed
    expect(await outcome(handler)).toBe("failed"); // 14, 6 failed
    expect(await outcome(handler)).toBe("failed"); // 15, 7 failed
    expect(await outcome(handler)).toBe("failed"); // 16, 8 failed: 50% → opens
    expect(await outcome(handler)).toBe("rejected");
  });

  it("slow-call ratio: the notes' rule (1 minute, 30% slower than 1 s) trips at 40% of calls taking 1.2 s", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const rule = slowCallRatio({ windowMs: 60_000, slowCallMs: 1000, ratio: 0.3, minRequests: 20 });
    const handler = circuitBreaker({ rule, now })(dep.handler);
    const results: string[] = [];
    for (let i = 0; i < 40; i++) {
      dep.latency = i % 5 < 2 ? 1200 : 50; // 40% slow
      results.push(await outcome(handler));
    }
    expect(results.slice(0, 20)).not.toContain("rejected");
    expect(results.at(-1)).toBe("rejected");
  });

  it("slow-call ratio: does not trip at 20% slow calls, nor on calls of exactly slowCallMs", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const rule = slowCallRatio({ windowMs: 60_000, slowCallMs: 1000, ratio: 0.3, minRequests: 20 });
    const handler = circuitBreaker({ rule, now })(dep.handler);
    for (let i = 0; i < 500; i++) {
      dep.latency = i % 5 === 0 ? 1200 : i % 5 === 1 ? 1000 : 50; // 20% slow, 20% at exactly 1 s
      expect(await outcome(handler)).toBe("ok");
    }
  });

  it("slow-call ratio: a slow half-open probe reopens the breaker", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const rule = slowCallRatio({ windowMs: 60_000, slowCallMs: 1000, ratio: 0.3, minRequests: 1 });
    const handler = circuitBreaker({ rule, now, openMs: 5000 })(dep.handler);
    dep.latency = 1200;
    await outcome(handler);
    expect(await outcome(handler)).toBe("rejected");
    clock.t += 5000;
    expect(await outcome(handler)).toBe("ok"); // the probe answers, slowly
    expect(await outcome(handler)).toBe("rejected");
  });
});

describe("circuitBreaker: clock reads", () => {
  it("reads the clock once per call when its rule ignores latency, twice when it reads it", async () => {
    for (const [rule, reads] of [
      [consecutiveFailures(), 1],
      [failureRatio(), 1],
      [adaptiveThrottling(), 2], // admits slides the window, done counts at its end
      [slowCallRatio({ slowCallMs: 100, ratio: 0.5 }), 2],
      [{ ...failureRatio() }, 2], // a rule made elsewhere may read latency: timed
    ] as const) {
      const { clock, now } = harness();
      let count = 0;
      const counted = (): number => {
        count++;
        return now();
      };
      const handler = circuitBreaker({ rule, now: counted })(dependency(clock).handler);
      await outcome(handler);
      count = 0;
      await outcome(handler);
      expect([rule.name, count]).toEqual([rule.name, reads]);
    }
  });
});

describe("circuitBreaker: default clock", () => {
  it("reads no clock per call for a rule that ignores latency, performance.now twice for one that reads it", async () => {
    for (const [rule, reads] of [
      [failureRatio(), 0],
      [slowCallRatio({ slowCallMs: 100, ratio: 0.5 }), 2],
    ] as const) {
      const handler = circuitBreaker({ rule })(dependency({ t: 0 }).handler);
      await outcome(handler);
      const clock = vi.spyOn(performance, "now");
      try {
        await outcome(handler);
        expect([rule.name, clock.mock.calls.length]).toEqual([rule.name, reads]);
      } finally {
        clock.mockRestore();
      }
    }
  });
});

describe("adaptive throttling", () => {
  /** A random source cycling through 0, 0.01, …, 0.99. */
  const cycling = () => {
    let i = 0;
    return () => (i++ % 100) / 100;
  };

  it("rejects nothing at 30% failures with K = 2", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({ rule: adaptiveThrottling({ k: 2 }), now, random: cycling() })(
      dep.handler,
    );
    for (let i = 0; i < 3000; i++) {
      dep.error = i % 10 < 3 ? unavailable() : undefined;
      clock.t += 1;
      expect(await outcome(handler)).not.toBe("rejected");
    }
  });

  it("rejects with probability (requests − K·accepts) / (requests + 1), counting rejections as requests", () => {
    const { now } = harness();
    let draw = 0;
    const settings = breakerSettings({
      rule: adaptiveThrottling({ k: 2, minRequests: 20 }),
      now,
      random: () => draw,
    });
    const breaker = createBreaker("b", settings);
    for (let i = 0; i < 19; i++) breaker.done(0, true, 1, now());
    expect(breaker.admits()).toBe(true); // below minRequests
    breaker.done(0, true, 1, now()); // 20 requests, 0 accepts: p = 20/21
    draw = 20 / 21 - 0.001;
    expect(breaker.admits()).toBe(false);
    draw = 20 / 21;
    expect(breaker.admits()).toBe(true);
    breaker.rejected(); // 21 requests: p = 21/22
    draw = 21 / 22 - 0.001;
    expect(breaker.admits()).toBe(false);
    for (let i = 0; i < 11; i++) breaker.done(0, false, 1, now()); // 32 requests, 11 accepts: p = 10/33
    draw = 10 / 33 - 0.001;
    expect(breaker.admits()).toBe(false);
    draw = 10 / 33;
    expect(breaker.admits()).toBe(true);
    expect(breaker.state).toBe("closed");
  });

  it("follows a failing dependency down and back up as its 3 s window slides", async () => {
    const { clock, now } = harness();
    const dep = dependency(clock);
    const handler = circuitBreaker({ rule: adaptiveThrottling(), now, random: cycling() })(dep.handler);
    dep.error = unavailable();
    const failing: string[] = [];
    for (let i = 0; i < 300; i++) {
      clock.t += 10;
      failing.push(await outcome(handler));
    }
    const rejected = failing.slice(100).filter((o) => o === "rejected").length;
    expect(rejected / 200).toBeGreaterThan(0.9);
    dep.error = undefined;
    clock.t += 3000; // the failures slid out
    for (let i = 0; i < 100; i++) {
      clock.t += 10;
      expect(await outcome(handler)).toBe("ok");
    }
  });
});

describe("circuitBreaker: each outcome counts by the state that admitted its call", () => {
  /** A dependency whose calls stay in flight until the test settles them, in any order. */
  function held() {
    const calls: Deferred<CallResult>[] = [];
    return {
      calls,
      handler: (_call: Call): Promise<CallResult> => {
        const pending = deferred<CallResult>();
        calls.push(pending);
        return pending.promise;
      },
    };
  }

  /** Starts a call through `handler`; its outcome (as `outcome` names it) once it settles. */
  const started = (handler: (call: Call) => Promise<CallResult>): Promise<string> => outcome(handler);

  // each rule opens on one call that fails after 1001 ms (slow too); openMs is 100, below slowCallMs,
  // so a late call sent while closed answers fast enough to pass for a successful probe
  const rules: [string, () => TripRule][] = [
    ["consecutive failures", () => consecutiveFailures({ failures: 1 })],
    ["failure ratio", () => failureRatio({ ratio: 0.5, minRequests: 1 })],
    ["slow-call ratio", () => slowCallRatio({ slowCallMs: 1000, ratio: 0.5, minRequests: 1 })],
  ];

  /**
   * A breaker on `rule` that `late` was sent through while closed: opened at 1001 ms by another
   * call, its `late` call still in flight.
   */
  async function opened(rule: TripRule) {
    const { clock, events, telemetry, now } = harness();
    const dep = held();
    const handler = circuitBreaker({ rule, openMs: 100, now, telemetry })(dep.handler);
    const trip = started(handler);
    clock.t += 1000;
    const late = started(handler);
    clock.t += 1;
    dep.calls[0]!.reject(unavailable());
    expect(await trip).toBe("failed");
    expect(await outcome(handler)).toBe("rejected");
    const states = () => events.filter((e) => e.includes("→")).map((e) => e.slice(e.indexOf(":") + 2));
    return { clock, dep, handler, late, states };
  }

  for (const [name, rule] of rules) {
    it(`${name}: a late success while open or half-open closes nothing; the probe's success does`, async () => {
      const { clock, dep, handler, late, states } = await opened(rule());
      clock.t += 50;
      dep.calls[1]!.resolve(ok); // while open
      expect(await late).toBe("ok");
      expect(await outcome(handler)).toBe("rejected");
      clock.t += 50;
      const probe = started(handler);
      expect(states()).toEqual(["closed → open", "open → half-open"]);
      const late2 = started(handler); // the one probe is out: rejected
      expect(await late2).toBe("rejected");
      expect(dep.calls).toHaveLength(3);
      dep.calls[2]!.resolve(ok);
      expect(await probe).toBe("ok");
      expect(states()).toEqual(["closed → open", "open → half-open", "half-open → closed"]);
    });

    it(`${name}: a late success while the probe is out is not the probe's; the probe's failure reopens`, async () => {
      const { clock, dep, handler, late, states } = await opened(rule());
      clock.t += 100;
      const probe = started(handler);
      dep.calls[1]!.resolve(ok); // sent while closed, answers 101 ms later: fast, successful
      expect(await late).toBe("ok");
      expect(states()).toEqual(["closed → open", "open → half-open"]);
      expect(await outcome(handler)).toBe("rejected"); // still half-open, its probe still out
      dep.calls[2]!.reject(unavailable());
      expect(await probe).toBe("failed");
      expect(states()).toEqual(["closed → open", "open → half-open", "half-open → open"]);
      expect(await outcome(handler)).toBe("rejected");
    });

    it(`${name}: a late failure does not reopen while the probe is out; the probe's success closes`, async () => {
      const { clock, dep, handler, late, states } = await opened(rule());
      clock.t += 100;
      const probe = started(handler);
      dep.calls[1]!.reject(unavailable());
      expect(await late).toBe("failed");
      expect(states()).toEqual(["closed → open", "open → half-open"]);
      dep.calls[2]!.resolve(ok);
      expect(await probe).toBe("ok");
      expect(states()).toEqual(["closed → open", "open → half-open", "half-open → closed"]);
      const after = started(handler);
      dep.calls[3]!.resolve(ok);
      expect(await after).toBe("ok");
    });
  }

  it("a probe of an earlier half-open period is not one of the next", async () => {
    const { clock, now } = harness();
    const breaker = createBreaker(
      "b",
      breakerSettings({ rule: consecutiveFailures({ failures: 1 }), probes: 2, openMs: 100, now }),
    );
    breaker.done(breaker.take(), true, 1, now());
    clock.t += 100;
    const [first, second] = [breaker.take(), breaker.take()];
    breaker.done(first, true, 1, now()); // reopens
    clock.t += 100;
    const [third, fourth] = [breaker.take(), breaker.take()];
    expect(breaker.state).toBe("half-open");
    breaker.done(second, false, 1, now()); // of the earlier period: neither passes nor frees a slot
    breaker.done(third, false, 1, now());
    expect([breaker.state, breaker.admits()]).toEqual(["half-open", false]);
    breaker.done(fourth, false, 1, now());
    expect(breaker.state).toBe("closed");
  });

  it("a late failure of an earlier closed period does not count in the next one", async () => {
    const { clock, now } = harness();
    const breaker = createBreaker(
      "b",
      breakerSettings({ rule: consecutiveFailures({ failures: 2 }), openMs: 100, now }),
    );
    const late = breaker.take();
    breaker.done(breaker.take(), true, 1, now());
    breaker.done(breaker.take(), true, 1, now());
    clock.t += 100;
    breaker.done(breaker.take(), false, 1, now());
    expect(breaker.state).toBe("closed");
    breaker.done(breaker.take(), true, 1, now()); // one failure of this period
    breaker.done(late, true, 1, now()); // of the first period: not a second in a row
    expect(breaker.state).toBe("closed");
    breaker.done(breaker.take(), true, 1, now());
    expect(breaker.state).toBe("open");
  });

  it("adaptive throttling has no states: a late outcome counts in its window as any other", async () => {
    const { now } = harness();
    const dep = held();
    const handler = circuitBreaker({
      rule: adaptiveThrottling({ k: 2, minRequests: 20 }),
      now,
      random: () => 0.5,
    })(dep.handler);
    const late = started(handler);
    for (let i = 1; i < 20; i++) {
      const call = started(handler);
      dep.calls[i]!.reject(unavailable());
      expect(await call).toBe("failed");
    }
    dep.calls[0]!.reject(unavailable()); // the 20th request, none accepted: p = 20/21
    expect(await late).toBe("failed");
    expect(await outcome(handler)).toBe("rejected");
  });
});
