/*
 * Metrics of Weft messaging: one message interceptor (publish and consume) and a telemetry receiver
 * for what happens outside the handler (redeliveries, dead letters, expiry, drains), for Prometheus
 * (prom-client, with `metrics()`'s registry handling) and, optionally, through the OpenTelemetry
 * metrics API with the semantic-convention names.
 */
import type { Attributes, MeterProvider, Histogram as OtelHistogram } from "@opentelemetry/api";
import {
  ConfigError,
  codeName,
  type Telemetry,
  WeftError,
  type WeftEventName,
  type WeftEvents,
} from "@weft/core";
import type { InterceptedMessage, MessageInterceptor, MessageStep } from "@weft/messaging";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { addTo, bucketsOption, countOption, registryOption } from "./metrics.ts";
import { INSTRUMENTATION_NAME } from "./tracing.ts";

export interface MessagingMetricsOptions {
  /** As `metrics()`: the prom-client registry, default a new `Registry` of their own, returned as `registry`. */
  registry?: Registry;
  /** Upper bounds of the duration histograms' buckets, in seconds, ascending. Default `DEFAULT_BUCKETS`. */
  buckets?: readonly number[];
  /**
   * The `destination` label of a destination name. Default: the name itself, which is fine for
   * destinations the code declares (`destination("orders.placed")`); collapse names built from data
   * (a destination per tenant, per customer, a reply inbox) here, e.g. `(d) => d.replace(/^tenant\.[^.]+\./, "tenant.*.")`.
   */
  destinationLabel?: (destination: string) => string;
  /**
   * Distinct `destination` label values before further ones are counted as `other`: a bound on the
   * series a destination built from data could create. Default 1,000.
   */
  maxDestinations?: number;
  /**
   * Also record `messaging.client.operation.duration` (publish) and `messaging.process.duration`
   * (handler), unit `s`, through this OpenTelemetry meter provider. Default: none (Prometheus only).
   */
  meterProvider?: MeterProvider;
}

/** What `messagingMetrics()` returns: the interceptor, a telemetry receiver and the registry they fill. */
export interface MessagingMetrics {
  /** Give to `createMessenger({ interceptors })`: publishes, handler runs and their durations. */
  readonly interceptor: MessageInterceptor;
  /** Give to `createMessenger({ telemetry })`: acks, redeliveries, dead letters, expired messages, drains. */
  readonly telemetry: Telemetry;
  /** The registry holding every metric: serve it with `listenAdmin(server, { registry })`. */
  readonly registry: Registry;
}

/**
 * Prometheus metrics of a messenger's messages. Labels: `destination` (see `destinationLabel`),
 * `group` (a group subscription's name, empty for a private one), `system` (the broker's name:
 * `memory`, `jetstream`, …), `outcome`.
 *
 * | metric                                    | type      | labels                                   |
 * | ----------------------------------------- | --------- | ---------------------------------------- |
 * | `weft_messages_published_total`           | counter   | destination, system, outcome (ok, error) |
 * | `weft_message_publish_duration_seconds`   | histogram | destination, system, outcome             |
 * | `weft_messages_consumed_total`            | counter   | destination, group, system, outcome (ack, retry, dead_letter, drop) |
 * | `weft_message_process_duration_seconds`   | histogram | destination, group, system, outcome (ok, error) |
 * | `weft_messages_in_flight`                 | gauge     | destination, group, system               |
 * | `weft_messages_expired_total`             | counter   | destination, group, system               |
 * | `weft_subscription_drain_handlers_total`  | counter   | destination, group, system, result (finished, abandoned) |
 *
 * `weft_messages_consumed_total` counts what the messenger decided for each delivery, from its
 * `telemetry` events (`message.acked`, `message.redelivered`, `message.dead_lettered`, and
 * `message.expired` for an expired request, dropped): give `telemetry` to the messenger too, or it
 * stays empty. Messages dead-lettered before any handler ran (malformed, expired) count `dead_letter`.
 *
 * ```ts
 * const mm = messagingMetrics({ registry: m.registry }); // next to metrics(), one scrape
 * const messenger = createMessenger({ broker, interceptors: [mm.interceptor], telemetry: mm.telemetry });
 * ```
 *
 * Throws `ConfigError` for bad options.
 */
export function messagingMetrics(options: MessagingMetricsOptions = {}): MessagingMetrics {
  const registry = registryOption(options.registry);
  const buckets = bucketsOption(options.buckets);
  const maxDestinations = countOption("maxDestinations", options.maxDestinations, 1000);
  const destinationLabel = options.destinationLabel;
  if (destinationLabel !== undefined && typeof destinationLabel !== "function")
    throw new ConfigError(
      "destinationLabel",
      "a function from a destination name to a label",
      destinationLabel,
    );
  const meter = options.meterProvider?.getMeter(INSTRUMENTATION_NAME);
  const otel = (name: string, description: string): OtelHistogram | undefined =>
    meter?.createHistogram(name, { description, unit: "s", advice: { explicitBucketBoundaries: buckets } });
  const stats = new MessageStats(
    registry,
    buckets,
    new DestinationLabels(destinationLabel, maxDestinations),
    otel(
      "messaging.client.operation.duration",
      "Duration of publishing a message, to the broker's confirmation",
    ),
    otel("messaging.process.duration", "Duration of handling a delivered message"),
  );
  return {
    interceptor: (next) => (message) =>
      message.side === "publish" ? stats.publish(next, message) : stats.process(next, message),
    telemetry: stats,
    registry,
  };
}

/** The `destination` label of each destination name, at most `max` distinct ones. */
class DestinationLabels {
  readonly #map: ((destination: string) => string) | undefined;
  readonly #max: number;
  readonly #labels = new Map<string, string>();
  readonly #values = new Set<string>();

  constructor(map: ((destination: string) => string) | undefined, max: number) {
    this.#map = map;
    this.#max = max;
  }

  of(destination: string): string {
    const known = this.#labels.get(destination);
    if (known !== undefined) return known;
    let label = this.#map === undefined ? destination : String(this.#map(destination));
    if (!this.#values.has(label)) {
      if (this.#values.size >= this.#max) label = "other";
      else this.#values.add(label);
    }
    // names collapsed by `destinationLabel` are not remembered past the bound: no growth with them
    if (this.#labels.size < this.#max * 4) this.#labels.set(destination, label);
    return label;
  }
}

/** One counter series: a plain number messages add to, read by prom-client when scraped. */
class Tally {
  readonly labels: Labels;
  count = 0;
  /** What the counter was last given. */
  exported = 0;

  constructor(labels: Labels, list: Tally[]) {
    this.labels = labels;
    list.push(this);
  }
}

type Labels = Record<string, string>;

/** The numbers of one publishing series (destination, system). */
interface PublishSeries {
  readonly ok: Tally;
  readonly error: Tally;
  readonly durations: { readonly ok: Histogram.Internal<string>; readonly error: Histogram.Internal<string> };
  readonly attributes: Attributes;
}

/** The numbers of one consuming series (destination, group, system). */
interface ConsumeSeries {
  readonly labels: Labels;
  inFlight: number;
  readonly ack: Tally;
  readonly retry: Tally;
  readonly deadLetter: Tally;
  readonly drop: Tally;
  readonly expired: Tally;
  readonly finished: Tally;
  readonly abandoned: Tally;
  readonly ok: Histogram.Internal<string>;
  readonly error: Histogram.Internal<string>;
  readonly attributes: Attributes;
}

const PUBLISH_LABELS = ["destination", "system", "outcome"] as const;
const CONSUME_LABELS = ["destination", "group", "system"] as const;

/** A counter whose series are `tallies`, read when the registry is scraped. */
function tallied(registry: Registry, name: string, help: string, labelNames: readonly string[]): Tally[] {
  const tallies: Tally[] = [];
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const t of tallies) t.exported = addTo(this, t.labels, t.count, t.exported);
    },
  });
  return tallies;
}

/**
 * The metrics and their series by destination, group and system. A message looks its series up
 * once (a map read) and adds to plain numbers, which prom-client reads when the registry is scraped
 * (as `metrics()` does); only the durations go through prom-client's histograms per message.
 */
class MessageStats implements Telemetry {
  readonly #destinations: DestinationLabels;
  readonly #publishOtel: OtelHistogram | undefined;
  readonly #processOtel: OtelHistogram | undefined;
  readonly #published: Tally[];
  readonly #publishDuration: Histogram<(typeof PUBLISH_LABELS)[number]>;
  readonly #consumed: Tally[];
  readonly #processDuration: Histogram<(typeof CONSUME_LABELS)[number] | "outcome">;
  readonly #expired: Tally[];
  readonly #drained: Tally[];
  readonly #publishing = new Map<string, PublishSeries>();
  readonly #consuming = new Map<string, ConsumeSeries>();

  constructor(
    registry: Registry,
    buckets: number[],
    destinations: DestinationLabels,
    publishOtel: OtelHistogram | undefined,
    processOtel: OtelHistogram | undefined,
  ) {
    const registers = [registry];
    this.#destinations = destinations;
    this.#publishOtel = publishOtel;
    this.#processOtel = processOtel;
    this.#published = tallied(
      registry,
      "weft_messages_published_total",
      "Messages published: ok once the broker has them, error when it refused or the publish failed",
      PUBLISH_LABELS,
    );
    this.#publishDuration = new Histogram({
      name: "weft_message_publish_duration_seconds",
      help: "Duration of publishing a message, to the broker's confirmation",
      labelNames: PUBLISH_LABELS,
      buckets,
      registers,
    });
    this.#consumed = tallied(
      registry,
      "weft_messages_consumed_total",
      "Deliveries consumed, by outcome: ack (handled), retry (to be delivered again), dead_letter, drop (an expired request)",
      [...CONSUME_LABELS, "outcome"],
    );
    this.#processDuration = new Histogram({
      name: "weft_message_process_duration_seconds",
      help: "Duration of handling a delivery (interceptors inside this one and the handler), by outcome: ok, error",
      labelNames: [...CONSUME_LABELS, "outcome"],
      buckets,
      registers,
    });
    const consuming = this.#consuming;
    new Gauge({
      name: "weft_messages_in_flight",
      help: "Deliveries being handled now, per subscription",
      labelNames: CONSUME_LABELS,
      registers,
      collect() {
        for (const series of consuming.values()) this.set(series.labels, series.inFlight);
      },
    });
    this.#expired = tallied(
      registry,
      "weft_messages_expired_total",
      "Messages whose expiry time passed before they were handled (dead-lettered; a request dropped)",
      CONSUME_LABELS,
    );
    this.#drained = tallied(
      registry,
      "weft_subscription_drain_handlers_total",
      "Handlers running when a subscription drained: finished within the grace period, or abandoned",
      [...CONSUME_LABELS, "result"],
    );
  }

  publish(next: MessageStep, message: InterceptedMessage): Promise<void> {
    return timed(next, message, this.#publishSeries(message.destination, message.system), this.#publishedOne);
  }

  process(next: MessageStep, message: InterceptedMessage): Promise<void> {
    const series = this.#consumeSeries(message.destination, message.group, message.system);
    series.inFlight++;
    return timed(next, message, series, this.#processed);
  }

  readonly #publishedOne = (
    series: PublishSeries,
    outcome: "ok" | "error",
    seconds: number,
    error: unknown,
  ) => {
    series[outcome].count++;
    series.durations[outcome].observe(seconds);
    this.#publishOtel?.record(seconds, withError(series.attributes, outcome, error));
  };

  readonly #processed = (series: ConsumeSeries, outcome: "ok" | "error", seconds: number, error: unknown) => {
    series.inFlight--;
    series[outcome].observe(seconds);
    this.#processOtel?.record(seconds, withError(series.attributes, outcome, error));
  };

  event<N extends WeftEventName>(name: N, attributes: WeftEvents[N]): void {
    switch (name) {
      case "message.acked":
      case "message.redelivered":
      case "message.dead_lettered":
      case "message.expired":
      case "subscription.drained": {
        const a = attributes as WeftEvents["subscription.drained" | "message.expired"];
        const series = this.#consumeSeries(a.destination, a.group, a.system);
        if (name === "message.acked") series.ack.count++;
        else if (name === "message.redelivered") series.retry.count++;
        else if (name === "message.dead_lettered") series.deadLetter.count++;
        else if (name === "message.expired") {
          series.expired.count++;
          // a dead-lettered one is counted by its `message.dead_lettered`
          if ((attributes as WeftEvents["message.expired"]).dropped) series.drop.count++;
        } else {
          const d = attributes as WeftEvents["subscription.drained"];
          series.finished.count += d.finished;
          series.abandoned.count += d.abandoned;
        }
      }
    }
  }

  #publishSeries(destination: string, system: string): PublishSeries {
    const key = `${destination}\u0000${system}`;
    let series = this.#publishing.get(key);
    if (series === undefined) {
      const label = this.#destinations.of(destination);
      const labels = (outcome: string): Labels => ({ destination: label, system, outcome });
      series = {
        ok: new Tally(labels("ok"), this.#published),
        error: new Tally(labels("error"), this.#published),
        durations: {
          ok: this.#publishDuration.labels(label, system, "ok"),
          error: this.#publishDuration.labels(label, system, "error"),
        },
        attributes: Object.freeze({
          "messaging.system": system,
          "messaging.destination.name": label,
          "messaging.operation.type": "send",
          "messaging.operation.name": "publish",
        }),
      };
      this.#publishing.set(key, series);
    }
    return series;
  }

  #consumeSeries(destination: string, group: string | undefined, system: string): ConsumeSeries {
    const key = `${destination}\u0000${group ?? ""}\u0000${system}`;
    let series = this.#consuming.get(key);
    if (series === undefined) {
      const label = this.#destinations.of(destination);
      const g = group ?? "";
      const labels: Labels = { destination: label, group: g, system };
      const attributes: Attributes = {
        "messaging.system": system,
        "messaging.destination.name": label,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
      };
      if (group !== undefined) attributes["messaging.consumer.group.name"] = group;
      series = {
        labels,
        inFlight: 0,
        ack: new Tally({ ...labels, outcome: "ack" }, this.#consumed),
        retry: new Tally({ ...labels, outcome: "retry" }, this.#consumed),
        deadLetter: new Tally({ ...labels, outcome: "dead_letter" }, this.#consumed),
        drop: new Tally({ ...labels, outcome: "drop" }, this.#consumed),
        expired: new Tally(labels, this.#expired),
        finished: new Tally({ ...labels, result: "finished" }, this.#drained),
        abandoned: new Tally({ ...labels, result: "abandoned" }, this.#drained),
        ok: this.#processDuration.labels(label, g, system, "ok"),
        error: this.#processDuration.labels(label, g, system, "error"),
        attributes: Object.freeze(attributes),
      };
      this.#consuming.set(key, series);
    }
    return series;
  }
}

/** Runs the rest of the chain and tells `ended` how it went and how long it took, in seconds. */
async function timed<S>(
  next: MessageStep,
  message: InterceptedMessage,
  series: S,
  ended: (series: S, outcome: "ok" | "error", seconds: number, error: unknown) => void,
): Promise<void> {
  const start = performance.now();
  try {
    await next(message);
  } catch (e) {
    ended(series, "error", (performance.now() - start) / 1000, e);
    throw e;
  }
  ended(series, "ok", (performance.now() - start) / 1000, undefined);
}

/** The OpenTelemetry attributes of one measurement: the series', and `error.type` on failure. */
function withError(attributes: Attributes, outcome: "ok" | "error", error: unknown): Attributes {
  if (outcome === "ok") return attributes;
  return { ...attributes, "error.type": codeName(WeftError.from(error).code) };
}
