/**
 * `messagingMetrics()` over the memory broker: the counts after N messages (published, acked,
 * retried, dead-lettered), the durations and in-flight gauge, the events it reads (expiry, drains),
 * the bound on destination labels, the OpenTelemetry duration histograms, and its options.
 */
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { Code, ConfigError, SILENT_LOGGER, type Telemetry, WeftError } from "@weft/core";
import { createMessenger, destination, memoryBroker } from "@weft/messaging";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { type MessagingMetricsOptions, messagingMetrics, metrics } from "../../src/index.ts";
import { ManualReader, value } from "../metric-values.ts";

const placed = destination<{ n: number }>("orders.placed");

/** A messenger measured by `messagingMetrics(options)`, its telemetry watched for dead letters. */
function measured(options: MessagingMetricsOptions = {}) {
  const mm = messagingMetrics(options);
  let deadLetters = 0;
  let wake: (() => void) | undefined;
  const telemetry: Telemetry = {
    event(name, attributes) {
      mm.telemetry.event(name, attributes);
      if (name === "message.dead_lettered") deadLetters++;
      wake?.();
    },
  };
  const messenger = createMessenger({
    broker: memoryBroker(),
    interceptors: [mm.interceptor],
    telemetry,
    logger: SILENT_LOGGER,
  });
  /** Resolves once `n` messages were dead-lettered (the event is what there is to wait for). */
  const deadLettered = async (n: number) => {
    while (deadLetters < n) await new Promise<void>((r) => (wake = r));
  };
  return { mm, messenger, deadLettered, r: mm.registry };
}

describe("messagingMetrics() counts", () => {
  it("N messages: published, acked, retried, dead-lettered, their durations, nothing left in flight", async () => {
    const { messenger, deadLettered, r } = measured();
    const N = 20;
    const failedOnce = new Set<number>();
    let handled = 0;
    let allHandled!: () => void;
    const done = new Promise<void>((res) => (allHandled = res));
    const sub = await messenger.subscribe(
      placed,
      (m) => {
        const n = m.body.n;
        // every 5th fails its first delivery; 7 always fails (dead-lettered after 2 deliveries)
        if (n === 7) throw new WeftError(Code.INTERNAL, "never works");
        if (n % 5 === 0 && !failedOnce.has(n)) {
          failedOnce.add(n);
          throw new WeftError(Code.UNAVAILABLE, "try again");
        }
        if (++handled === N - 1) allHandled();
      },
      { group: "billing", maxDeliveries: 2, backoff: { initialDelayMs: 1, maxDelayMs: 1 } },
    );
    for (let n = 0; n < N; n++) await messenger.publish(placed, { n });
    await done;
    await deadLettered(1);
    await sub.drain();

    const sub_ = { destination: "orders.placed", group: "billing", system: "memory" };
    const pub = { destination: "orders.placed", system: "memory" };
    expect(await value(r, "weft_messages_published_total", { ...pub, outcome: "ok" })).toBe(N);
    expect(await value(r, "weft_messages_published_total", { ...pub, outcome: "error" })).toBe(0);
    expect(await value(r, "weft_message_publish_duration_seconds", { ...pub, outcome: "ok" }, "_count")).toBe(
      N,
    );
    // 0, 5, 10, 15 fail once then succeed; 7 fails twice
    expect(await value(r, "weft_messages_consumed_total", { ...sub_, outcome: "ack" })).toBe(N - 1);
    expect(await value(r, "weft_messages_consumed_total", { ...sub_, outcome: "retry" })).toBe(4 + 1);
    expect(await value(r, "weft_messages_consumed_total", { ...sub_, outcome: "dead_letter" })).toBe(1);
    expect(
      await value(r, "weft_message_process_duration_seconds", { ...sub_, outcome: "ok" }, "_count"),
    ).toBe(N - 1);
    expect(
      await value(r, "weft_message_process_duration_seconds", { ...sub_, outcome: "error" }, "_count"),
    ).toBe(4 + 2);
    expect(await value(r, "weft_messages_in_flight", sub_)).toBe(0);
    expect(await value(r, "weft_subscription_drain_handlers_total", { ...sub_, result: "abandoned" })).toBe(
      0,
    );
    await messenger.close();
  });

  it("the in-flight gauge counts handlers running, per subscription", async () => {
    const { messenger, r } = measured();
    let release!: () => void;
    const held = new Promise<void>((res) => (release = res));
    let started = 0;
    let wake: (() => void) | undefined;
    await messenger.subscribe(
      placed,
      async () => {
        started++;
        wake?.();
        await held;
      },
      { group: "slow", maxInFlight: 4 },
    );
    for (let n = 0; n < 3; n++) await messenger.publish(placed, { n });
    while (started < 3) await new Promise<void>((res) => (wake = res));
    const labels = { destination: "orders.placed", group: "slow", system: "memory" };
    expect(await value(r, "weft_messages_in_flight", labels)).toBe(3);
    release();
    await messenger.close();
    expect(await value(r, "weft_messages_in_flight", labels)).toBe(0);
    expect(await value(r, "weft_messages_consumed_total", { ...labels, outcome: "ack" })).toBe(3);
  });

  it("counts what a manual-ack handler decided, not that it returned", async () => {
    const { messenger, r } = measured();
    let deliveries = 0;
    let done!: () => void;
    const acked = new Promise<void>((res) => (done = res));
    await messenger.subscribe(
      placed,
      async (m) => {
        if (++deliveries === 1) return void (await m.nack({ delayMs: 1 }));
        await m.ack();
        done();
      },
      { group: "manual", ack: "manual" },
    );
    await messenger.publish(placed, { n: 1 });
    await acked;
    await messenger.close();
    const labels = { destination: "orders.placed", group: "manual", system: "memory" };
    expect(await value(r, "weft_messages_consumed_total", { ...labels, outcome: "ack" })).toBe(1);
    expect(await value(r, "weft_messages_consumed_total", { ...labels, outcome: "retry" })).toBe(1);
    expect(
      await value(r, "weft_message_process_duration_seconds", { ...labels, outcome: "ok" }, "_count"),
    ).toBe(2);
  });

  it("reads expiry and drains from the telemetry events; a private subscription's group is empty", async () => {
    const { mm, r } = measured();
    const at = { destination: "orders.late", group: undefined, system: "jetstream" };
    mm.telemetry.event("message.expired", { ...at, dropped: false });
    mm.telemetry.event("message.dead_lettered", { ...at, reason: "MESSAGE_EXPIRED", attempts: 1 });
    mm.telemetry.event("message.expired", { ...at, dropped: true }); // a request: no dead letter
    mm.telemetry.event("subscription.drained", { ...at, finished: 2, abandoned: 1 });
    const labels = { destination: "orders.late", group: "", system: "jetstream" };
    expect(await value(r, "weft_messages_expired_total", labels)).toBe(2);
    expect(await value(r, "weft_messages_consumed_total", { ...labels, outcome: "dead_letter" })).toBe(1);
    expect(await value(r, "weft_messages_consumed_total", { ...labels, outcome: "drop" })).toBe(1);
    expect(await value(r, "weft_subscription_drain_handlers_total", { ...labels, result: "finished" })).toBe(
      2,
    );
    expect(await value(r, "weft_subscription_drain_handlers_total", { ...labels, result: "abandoned" })).toBe(
      1,
    );
  });

  it("a refused publish counts as an error and rejects as before", async () => {
    const { messenger, r } = measured();
    await messenger.broker.close();
    await expect(messenger.publish(placed, { n: 1 })).rejects.toThrow(WeftError);
    const labels = { destination: "orders.placed", system: "memory" };
    expect(await value(r, "weft_messages_published_total", { ...labels, outcome: "error" })).toBe(1);
    expect(await value(r, "weft_messages_published_total", { ...labels, outcome: "ok" })).toBe(0);
  });
});

describe("label cardinality", () => {
  it("destinationLabel collapses names; past maxDestinations they count as other", async () => {
    const { messenger, r } = measured({
      destinationLabel: (d) => d.replace(/^tenant\.[^.]+\./, "tenant.*."),
      maxDestinations: 2,
    });
    for (const t of ["a", "b", "c"]) await messenger.publish(destination(`tenant.${t}.orders`), {});
    await messenger.publish(destination("billing.due"), {});
    await messenger.publish(destination("audit.trail"), {});
    const ok = (d: string) =>
      value(r, "weft_messages_published_total", { destination: d, system: "memory", outcome: "ok" });
    expect(await ok("tenant.*.orders")).toBe(3);
    expect(await ok("billing.due")).toBe(1);
    expect(await ok("other")).toBe(1);
    expect(await r.metrics()).not.toContain("tenant.a");
    await messenger.close();
  });
});

describe("OpenTelemetry", () => {
  it("records messaging.client.operation.duration and messaging.process.duration (s) with the semantic-convention attributes", async () => {
    const reader = new ManualReader();
    const { messenger } = measured({ meterProvider: new MeterProvider({ readers: [reader] }) });
    let done!: () => void;
    const handled = new Promise<void>((res) => (done = res));
    await messenger.subscribe(placed, () => done(), { group: "billing" });
    await messenger.publish(placed, { n: 1 });
    await handled;
    await messenger.close();
    const { resourceMetrics } = await reader.collect();
    const found = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const publish = found.find((m) => m.descriptor.name === "messaging.client.operation.duration")!;
    const process = found.find((m) => m.descriptor.name === "messaging.process.duration")!;
    expect(publish.descriptor.unit).toBe("s");
    expect(process.descriptor.unit).toBe("s");
    expect(publish.dataPoints.map((p) => p.attributes)).toEqual([
      {
        "messaging.system": "memory",
        "messaging.destination.name": "orders.placed",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
      },
    ]);
    expect(process.dataPoints.map((p) => p.attributes)).toEqual([
      {
        "messaging.system": "memory",
        "messaging.destination.name": "orders.placed",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "billing",
      },
    ]);
  });
});

describe("options", () => {
  it("are checked up front: ConfigError naming the option", () => {
    expect(() => messagingMetrics({ destinationLabel: "x" as never })).toThrow(ConfigError);
    expect(() => messagingMetrics({ destinationLabel: "x" as never })).toThrow(/destinationLabel/);
    expect(() => messagingMetrics({ maxDestinations: 0 })).toThrow(/maxDestinations/);
    expect(() => messagingMetrics({ buckets: [2, 1] })).toThrow(/buckets/);
    expect(() => messagingMetrics({ registry: {} as Registry })).toThrow(/registry/);
  });

  it("shares a registry with metrics(): one scrape", async () => {
    const registry = metrics().registry;
    expect(messagingMetrics({ registry }).registry).toBe(registry);
    const text = await registry.metrics();
    expect(text).toContain("weft_server_calls_total");
    expect(text).toContain("weft_messages_consumed_total");
  });
});
