/*
 * Metrics of Weft calls and connections, for Prometheus (prom-client, in a registry of their own)
 * and, optionally, through the OpenTelemetry metrics API with the semantic-convention names.
 */
import type { Attributes, MeterProvider, Histogram as OtelHistogram } from "@opentelemetry/api";
import {
  type ByteTally,
  type Call,
  type CallHandler,
  type CallResult,
  type Code,
  ConfigError,
  codeName,
  type Interceptor,
  type Telemetry,
  type WeftEventName,
  type WeftEvents,
} from "@weft/core";
import { Counter, Gauge, type Histogram, Registry } from "prom-client";
import { type CallWatcher, endCode, watchCall } from "./call-end.ts";
import { INSTRUMENTATION_NAME, SYSTEM } from "./tracing.ts";

/**
 * Default duration buckets, in seconds: 1 ms to 10 s, dense where microservice calls land (a few
 * milliseconds to a few hundred).
 */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export interface MetricsOptions {
  /**
   * The prom-client registry the metrics are registered in. Default: a new `Registry` of their own
   * (never prom-client's global one), returned as `registry`.
   */
  registry?: Registry;
  /** Upper bounds of the duration histograms' buckets, in seconds, ascending. Default `DEFAULT_BUCKETS`. */
  buckets?: readonly number[];
  /**
   * Distinct `(service, method)` label pairs per side before further methods are counted under
   * `service="other", method="other"`: a bound on the series a misbehaving caller could create.
   * Default 1,000.
   */
  maxMethods?: number;
  /**
   * Also record `rpc.server.call.duration` and `rpc.client.call.duration` (unit `s`) through this
   * OpenTelemetry meter provider, with the attributes `rpc.system.name`, `rpc.method` and
   * `rpc.response.status_code`. Default: none (Prometheus only).
   */
  meterProvider?: MeterProvider;
}

/** What `metrics()` returns: two interceptors, a telemetry receiver and the registry they fill. */
export interface Metrics {
  /** Give to `createClient({ interceptors })`: the `weft_client_*` metrics. */
  readonly client: Interceptor;
  /** Give to `createServer({ interceptors })`: the `weft_server_*` metrics. */
  readonly server: Interceptor;
  /**
   * Give to `createServer({ telemetry })` and to transports (`createTcpTransport({ telemetry })`):
   * the connection and shutdown metrics.
   */
  readonly telemetry: Telemetry;
  /** The registry holding every metric: serve it with `listenAdmin(server, { registry })`. */
  readonly registry: Registry;
}

/**
 * Prometheus metrics (RED per method and side, streams, body bytes, connections, shutdown) of every
 * call that goes through the interceptors and every event given to `telemetry`. Body bytes are
 * counted through `Call.bytes`, which the interceptors point at the method's numbers unless another
 * interceptor set it first; every front end counts them (Weft TCP, gRPC, gRPC-web, Connect, REST).
 * Labels are bounded: service and method names (from the service definitions), status code names,
 * side, protocol, the peer service a client dialed, a `Reason`; never an address or anything a
 * caller sends.
 *
 * ```ts
 * const m = metrics();
 * const server = createServer({ interceptors: [m.server], telemetry: m.telemetry });
 * await listenAdmin(server, { port: 9464, registry: m.registry });
 * ```
 *
 * Throws `ConfigError` for bad options.
 */
export function metrics(options: MetricsOptions = {}): Metrics {
  const registry = registryOption(options.registry);
  const buckets = bucketsOption(options.buckets);
  const maxMethods = countOption("maxMethods", options.maxMethods, 1000);
  const meter = options.meterProvider?.getMeter(INSTRUMENTATION_NAME);
  const side = (name: "client" | "server"): SideMetrics => {
    const otel = meter?.createHistogram(`rpc.${name}.call.duration`, {
      description: `Duration of ${name === "server" ? "handled" : "outgoing"} RPC calls`,
      unit: "s",
      advice: { explicitBucketBoundaries: [...buckets] },
    });
    return new SideMetrics(registry, name, [...buckets], maxMethods, otel);
  };
  const client = side("client");
  const server = side("server");
  return {
    client: (next) => (call) => client.observe(next, call),
    server: (next) => (call) => server.observe(next, call),
    telemetry: new TelemetryMetrics(registry),
    registry,
  };
}

/** The `registry` option of `metrics()` and `messagingMetrics()`: a prom-client `Registry`, default a new one. */
export function registryOption(registry: Registry | undefined): Registry {
  const r = registry ?? new Registry();
  if (!(r instanceof Registry)) throw new ConfigError("registry", "a prom-client Registry", registry);
  return r;
}

/** The `buckets` option: ascending positive seconds, default `DEFAULT_BUCKETS`. */
export function bucketsOption(buckets: readonly number[] | undefined): number[] {
  const b = buckets ?? DEFAULT_BUCKETS;
  if (
    !Array.isArray(b) ||
    b.length === 0 ||
    b.some((v, i) => !(typeof v === "number" && v > 0 && Number.isFinite(v) && (i === 0 || v > b[i - 1]!)))
  ) {
    throw new ConfigError("buckets", "ascending positive numbers of seconds", buckets);
  }
  return [...b];
}

/** A bound on label values (`maxMethods`, `maxDestinations`): an integer ≥ 1. */
export function countOption(name: string, value: number | undefined, byDefault: number): number {
  const n = value ?? byDefault;
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(name, "an integer ≥ 1", value);
  return n;
}

const METHOD_LABELS = ["service", "method"] as const;
const CODE_LABELS = ["service", "method", "code"] as const;

/**
 * The metrics of one side (`weft_client_*` or `weft_server_*`). A call only adds to plain numbers
 * of its method (`MethodStats`, `CodeStats`); prom-client reads them when the registry is scraped
 * (`collect`, and `DurationHistogram`), so the scrape shows what prom-client's own `inc`/`observe`
 * would have, at no label lookup or validation per call.
 */
class SideMetrics implements CallWatcher<MethodStats> {
  readonly timed = true;
  readonly #methods = new Map<string, MethodStats>();
  /** In the order they were first used: the order of the series on a scrape. */
  readonly #list: MethodStats[] = [];
  /** Every (method, code) that ended a call, in the order they first did. */
  readonly series: CodeStats[] = [];
  /** What methods beyond `maxMethods` count under. */
  #other: MethodStats | undefined;
  readonly #maxMethods: number;
  readonly buckets: readonly number[];
  readonly otel: OtelHistogram | undefined;

  constructor(
    registry: Registry,
    side: "client" | "server",
    buckets: readonly number[],
    maxMethods: number,
    otel: OtelHistogram | undefined,
  ) {
    const registers = [registry];
    const what = side === "server" ? "handled" : "made";
    this.#maxMethods = maxMethods;
    this.buckets = buckets;
    this.otel = otel;
    const methods = this.#list;
    const series = this.series;
    new Counter({
      name: `weft_${side}_calls_total`,
      help: `Calls ${what}, by status code`,
      labelNames: CODE_LABELS,
      registers,
      collect() {
        for (const s of series) {
          s.exported = addTo(this, s.labels, s.count, s.exported);
        }
      },
    });
    registry.registerMetric(
      new DurationHistogram(
        `weft_${side}_call_duration_seconds`,
        `Duration of calls ${what}, to the end of the response (stream)`,
        this,
      ) as unknown as Histogram,
    );
    new Gauge({
      name: `weft_${side}_calls_in_flight`,
      help: `Calls ${what} that have not ended yet`,
      labelNames: METHOD_LABELS,
      registers,
      collect() {
        for (const m of methods) if (m.used) this.set(m.labels, m.inFlight);
      },
    });
    const sent = side === "client" ? "requests" : "responses";
    const received = side === "client" ? "responses" : "requests";
    new Counter({
      name: `weft_${side}_stream_messages_sent_total`,
      help: "Messages sent on streams",
      labelNames: METHOD_LABELS,
      registers,
      collect() {
        for (const m of methods) m.exported[sent] = addTo(this, m.labels, m[sent], m.exported[sent]);
      },
    });
    new Counter({
      name: `weft_${side}_stream_messages_received_total`,
      help: "Messages received on streams",
      labelNames: METHOD_LABELS,
      registers,
      collect() {
        for (const m of methods) {
          m.exported[received] = addTo(this, m.labels, m[received], m.exported[received]);
        }
      },
    });
    // a client call's bytes sent are its request's, a server call's its response's
    const bodyBytes = (body: "request" | "response", key: keyof ByteTally) =>
      new Counter({
        name: `weft_${side}_${body}_bytes_total`,
        help: `${body === "request" ? "Request" : "Response"} body bytes, after compression, without framing`,
        labelNames: METHOD_LABELS,
        registers,
        collect() {
          for (const m of methods)
            m.exportedBytes[key] = addTo(this, m.labels, m.bytes[key], m.exportedBytes[key]);
        },
      });
    bodyBytes("request", side === "client" ? "sent" : "received");
    bodyBytes("response", side === "client" ? "received" : "sent");
  }

  observe(next: CallHandler, call: Call): Promise<CallResult> {
    const method = this.#method(call);
    method.inFlight++;
    // the transport and the server's front end add the call's body bytes to its method's tally
    if (call.bytes === undefined) call.bytes = method.bytes;
    return watchCall(next, call, this, method);
  }

  request(method: MethodStats): void {
    method.requests++;
  }

  response(method: MethodStats): void {
    method.responses++;
  }

  end(method: MethodStats, call: Call, error: unknown, seconds: number): void {
    method.inFlight--;
    const code = endCode(error);
    const c = method.codes[code] ?? this.#code(method, code);
    c.count++;
    c.sum += seconds;
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (seconds <= buckets[i]!) {
        c.buckets[i]!++;
        break;
      }
    }
    const otel = this.otel;
    if (otel !== undefined) {
      const attributes: Attributes = {
        "rpc.method": method.rpcMethod,
        "rpc.response.status_code": codeName(code),
      };
      const protocol = call.protocol;
      if (protocol !== undefined) attributes["rpc.system.name"] = SYSTEM[protocol];
      otel.record(seconds, attributes);
    }
  }

  #code(method: MethodStats, code: Code): CodeStats {
    const c = new CodeStats({ ...method.labels, code: codeName(code) }, this.buckets.length);
    method.codes[code] = c;
    this.series.push(c);
    return c;
  }

  #method(call: Call): MethodStats {
    const path = call.method.path;
    const m = this.#methods.get(path);
    if (m !== undefined) return m;
    if (this.#methods.size >= this.#maxMethods) {
      if (this.#other === undefined) {
        this.#other = new MethodStats("other", "other", "other");
        this.#list.push(this.#other);
      }
      return this.#other;
    }
    const made = new MethodStats(
      call.method.service.typeName,
      path.slice(path.lastIndexOf("/") + 1),
      path.slice(1),
    );
    this.#methods.set(path, made);
    this.#list.push(made);
    return made;
  }
}

/** Adds what `count` grew by since `exported` to `counter`'s series `labels`; returns `count`. */
export function addTo(counter: Counter<string>, labels: Labels, count: number, exported: number): number {
  if (count > exported) counter.inc(labels, count - exported);
  return count;
}

type Labels = Record<string, string>;

/** The numbers of one method on one side, which its calls add to. */
class MethodStats {
  readonly labels: Labels;
  /** `rpc.method` of the OpenTelemetry attributes. */
  readonly rpcMethod: string;
  inFlight = 0;
  requests = 0;
  responses = 0;
  /** What the stream message counters were last given. */
  readonly exported = { requests: 0, responses: 0 };
  /** Body bytes of its calls, added to where they are encoded and read (`Call.bytes`). */
  readonly bytes: ByteTally = { sent: 0, received: 0 };
  /** What the byte counters were last given. */
  readonly exportedBytes: ByteTally = { sent: 0, received: 0 };
  /** By status code (0–16), made on first use. */
  readonly codes: (CodeStats | undefined)[] = [];

  constructor(service: string, method: string, rpcMethod: string) {
    this.labels = { service, method };
    this.rpcMethod = rpcMethod;
  }

  /** Whether a call of it has started: a series of its own on a scrape. */
  get used(): boolean {
    return this.inFlight > 0 || this.codes.length > 0;
  }
}

/** The calls of one method that ended with one status code. */
class CodeStats {
  readonly labels: Labels;
  count = 0;
  /** Seconds. */
  sum = 0;
  /** Calls per bucket, not cumulative; those above the last bound are in `count` only. */
  readonly buckets: number[];
  /** What `weft_*_calls_total` was last given. */
  exported = 0;
  /** What `reset()` of the duration histogram left: subtracted on a scrape. */
  base: { count: number; sum: number; buckets: number[] } | undefined = undefined;

  constructor(labels: Labels, buckets: number) {
    this.labels = labels;
    this.buckets = new Array<number>(buckets).fill(0);
  }
}

/**
 * `weft_{side}_call_duration_seconds`: a metric prom-client's registry formats like its own
 * `Histogram` (same values, same order), read from the side's `CodeStats` when scraped.
 */
class DurationHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #side: SideMetrics;

  constructor(name: string, help: string, side: SideMetrics) {
    this.name = name;
    this.help = help;
    this.#side = side;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramValue[] }> {
    const bounds = this.#side.buckets;
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.#side.series) {
      const base = s.base;
      const count = s.count - (base?.count ?? 0);
      if (base !== undefined && count === 0) continue;
      let acc = 0;
      for (let i = 0; i < bounds.length; i++) {
        acc += s.buckets[i]! - (base?.buckets[i] ?? 0);
        values.push({ value: acc, metricName: bucket, labels: { le: bounds[i]!, ...s.labels } });
      }
      values.push(
        { value: count, metricName: bucket, labels: { le: "+Inf", ...s.labels } },
        { value: s.sum - (base?.sum ?? 0), metricName: `${this.name}_sum`, labels: { ...s.labels } },
        { value: count, metricName: `${this.name}_count`, labels: { ...s.labels } },
      );
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  /** As prom-client's `reset()`: the series start again from 0, and show once a call adds to them. */
  reset(): void {
    for (const s of this.#side.series) s.base = { count: s.count, sum: s.sum, buckets: [...s.buckets] };
  }
}

interface HistogramValue {
  value: number;
  metricName: string;
  labels: Record<string, string | number>;
}

const CONNECTION_LABELS = ["side", "protocol", "peer_service"] as const;

/** The connection and shutdown metrics, from Weft's events. */
class TelemetryMetrics implements Telemetry {
  readonly #open: Gauge<(typeof CONNECTION_LABELS)[number]>;
  readonly #opened: Counter<(typeof CONNECTION_LABELS)[number]>;
  readonly #closed: Counter<(typeof CONNECTION_LABELS)[number] | "reason">;
  readonly #goaways: Counter<"side" | "protocol" | "direction">;
  readonly #stalls: Counter<"side" | "protocol" | "waiting_for">;
  readonly #draining: Gauge;
  readonly #drainInFlight: Gauge;
  readonly #cancelled: Counter;
  readonly #shutdown: Gauge;
  readonly #decisions: Counter<"policy" | "decision" | "method">;
  readonly #breakerState: Gauge<"breaker">;
  readonly #breakerTransitions: Counter<"breaker" | "to">;
  readonly #limiterFallback: Gauge;
  readonly #discoveryNodes: Gauge<"service" | "protocol">;
  readonly #discoveryOutage: Gauge<"service">;
  readonly #discoveryOutages: Counter<"service">;
  readonly #outboxRelayed: Counter<"relay">;
  readonly #outboxFailed: Counter<"relay">;
  readonly #outboxLeader: Gauge<"relay">;
  readonly #outboxUnpublished: Gauge<"relay">;
  readonly #outboxOldest: Gauge<"relay">;
  readonly #outboxSlotLag: Gauge<"relay">;
  readonly #inboxDuplicates: Counter<"group">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#decisions = new Counter({
      name: "weft_resilience_decisions_total",
      help: "Decisions of the resilience policies: retries, hedges, fallbacks and calls rejected by a breaker, limiter, bulkhead or shedder",
      labelNames: ["policy", "decision", "method"],
      registers,
    });
    this.#breakerState = new Gauge({
      name: "weft_breaker_state",
      help: "State of each circuit breaker: 0 closed, 0.5 half-open, 1 open (instance breakers as one series)",
      labelNames: ["breaker"],
      registers,
    });
    this.#breakerTransitions = new Counter({
      name: "weft_breaker_transitions_total",
      help: "Circuit breaker state changes, by the state entered",
      labelNames: ["breaker", "to"],
      registers,
    });
    this.#limiterFallback = new Gauge({
      name: "weft_ratelimit_fallback_active",
      help: "1 while a distributed rate limiter answers from its local fallback (its store unreachable)",
      registers,
    });
    this.#discoveryNodes = new Gauge({
      name: "weft_discovery_nodes",
      help: "Nodes a client's membership has for a service",
      labelNames: ["service", "protocol"],
      registers,
    });
    this.#discoveryOutage = new Gauge({
      name: "weft_discovery_outage",
      help: "1 while a client cannot watch a service's registry and uses its last known instances",
      labelNames: ["service"],
      registers,
    });
    this.#discoveryOutages = new Counter({
      name: "weft_discovery_outages_total",
      help: "Registry outages a client went through, per service",
      labelNames: ["service"],
      registers,
    });
    this.#open = new Gauge({
      name: "weft_connections",
      help: "Connections open",
      labelNames: CONNECTION_LABELS,
      registers,
    });
    this.#opened = new Counter({
      name: "weft_connections_opened_total",
      help: "Connections opened",
      labelNames: CONNECTION_LABELS,
      registers,
    });
    this.#closed = new Counter({
      name: "weft_connections_closed_total",
      help: "Connections closed, by reason",
      labelNames: [...CONNECTION_LABELS, "reason"],
      registers,
    });
    this.#goaways = new Counter({
      name: "weft_goaways_total",
      help: "GOAWAY frames sent and received",
      labelNames: ["side", "protocol", "direction"],
      registers,
    });
    this.#stalls = new Counter({
      name: "weft_flow_stalls_total",
      help: "Times a stream sender waited for flow-control credit or for output to drain",
      labelNames: ["side", "protocol", "waiting_for"],
      registers,
    });
    this.#draining = new Gauge({
      name: "weft_server_draining",
      help: "1 while the server drains its calls at shutdown, else 0",
      registers,
    });
    this.#drainInFlight = new Gauge({
      name: "weft_server_drain_calls_in_flight",
      help: "Calls left to finish when the drain began, then when it ended",
      registers,
    });
    this.#cancelled = new Counter({
      name: "weft_server_drain_cancelled_calls_total",
      help: "Calls cancelled at the shutdown timeout",
      registers,
    });
    this.#shutdown = new Gauge({
      name: "weft_server_shutdown_duration_seconds",
      help: "Duration of the last shutdown, from the start of the drain to closed",
      registers,
    });
    const labelNames = ["relay"] as const;
    this.#outboxRelayed = new Counter({
      name: "weft_outbox_relayed_total",
      help: "Stored messages an outbox relay published to the broker",
      labelNames,
      registers,
    });
    this.#outboxFailed = new Counter({
      name: "weft_outbox_publish_failures_total",
      help: "Stored messages an outbox relay could not publish (tried again later)",
      labelNames,
      registers,
    });
    this.#outboxLeader = new Gauge({
      name: "weft_outbox_leader",
      help: "1 while this instance is the outbox relay that publishes",
      labelNames,
      registers,
    });
    this.#outboxUnpublished = new Gauge({
      name: "weft_outbox_unpublished",
      help: "Committed outbox messages not published yet",
      labelNames,
      registers,
    });
    this.#outboxOldest = new Gauge({
      name: "weft_outbox_oldest_unpublished_seconds",
      help: "Age of the oldest committed outbox message not published yet (0 when none)",
      labelNames,
      registers,
    });
    this.#outboxSlotLag = new Gauge({
      name: "weft_outbox_slot_lag_bytes",
      help: "WAL bytes between the server's position and the log-tailing relay's replication slot",
      labelNames,
      registers,
    });
    this.#inboxDuplicates = new Counter({
      name: "weft_inbox_duplicates_total",
      help: "Messages an idempotent consumer skipped because its group had processed their id",
      labelNames: ["group"],
      registers,
    });
    this.#draining.set(0);
  }

  event<N extends WeftEventName>(name: N, attributes: WeftEvents[N]): void {
    switch (name) {
      case "connection.opened": {
        const a = attributes as WeftEvents["connection.opened"];
        const labels = [a.side, a.protocol, a.peerService ?? ""];
        this.#open.labels(...labels).inc();
        this.#opened.labels(...labels).inc();
        return;
      }
      case "connection.closed": {
        const a = attributes as WeftEvents["connection.closed"];
        this.#open.labels(a.side, a.protocol, a.peerService ?? "").dec();
        this.#closed.labels(a.side, a.protocol, a.peerService ?? "", a.reason).inc();
        return;
      }
      case "goaway.sent":
      case "goaway.received": {
        const a = attributes as WeftEvents["goaway.sent"];
        this.#goaways.labels(a.side, a.protocol, name === "goaway.sent" ? "sent" : "received").inc();
        return;
      }
      case "flow.stalled": {
        const a = attributes as WeftEvents["flow.stalled"];
        this.#stalls.labels(a.side, a.protocol, a.waitingFor).inc();
        return;
      }
      case "shutdown.draining":
        this.#draining.set(1);
        this.#drainInFlight.set((attributes as WeftEvents["shutdown.draining"]).inFlight);
        return;
      case "shutdown.drained": {
        const a = attributes as WeftEvents["shutdown.drained"];
        this.#drainInFlight.set(a.inFlight);
        this.#cancelled.inc(a.cancelled);
        return;
      }
      case "shutdown.closed":
        this.#draining.set(0);
        this.#shutdown.set((attributes as WeftEvents["shutdown.closed"]).durationMs / 1000);
        return;
      case "discovery.changed": {
        const a = attributes as WeftEvents["discovery.changed"];
        this.#discoveryNodes.labels(a.service, a.protocol).set(a.nodes);
        return;
      }
      case "discovery.outage": {
        const service = (attributes as WeftEvents["discovery.outage"]).service;
        this.#discoveryOutage.labels(service).set(1);
        this.#discoveryOutages.labels(service).inc();
        return;
      }
      case "discovery.recovered":
        this.#discoveryOutage.labels((attributes as WeftEvents["discovery.recovered"]).service).set(0);
        return;
      case "breaker.state": {
        const a = attributes as WeftEvents["breaker.state"];
        const breaker = breakerLabel(a.name);
        this.#breakerState.labels(breaker).set(a.to === "open" ? 1 : a.to === "half-open" ? 0.5 : 0);
        this.#breakerTransitions.labels(breaker, a.to).inc();
        return;
      }
      case "breaker.rejected":
        this.#decide(
          "breaker",
          "rejected",
          breakerLabel((attributes as WeftEvents["breaker.rejected"]).name),
        );
        return;
      case "ratelimit.fallback":
        this.#limiterFallback.set((attributes as WeftEvents["ratelimit.fallback"]).active ? 1 : 0);
        return;
      case "outbox.relayed": {
        const a = attributes as WeftEvents["outbox.relayed"];
        this.#outboxRelayed.labels(a.relay).inc(a.messages);
        if (a.failed > 0) this.#outboxFailed.labels(a.relay).inc(a.failed);
        return;
      }
      case "outbox.leadership": {
        const a = attributes as WeftEvents["outbox.leadership"];
        this.#outboxLeader.labels(a.relay).set(a.leader ? 1 : 0);
        return;
      }
      case "outbox.lag": {
        const a = attributes as WeftEvents["outbox.lag"];
        this.#outboxUnpublished.labels(a.relay).set(a.unpublished);
        this.#outboxOldest.labels(a.relay).set(a.oldestUnpublishedAgeMs / 1000);
        return;
      }
      case "outbox.slot_lag": {
        const a = attributes as WeftEvents["outbox.slot_lag"];
        this.#outboxSlotLag.labels(a.relay).set(a.slotLagBytes);
        return;
      }
      case "inbox.duplicate":
        this.#inboxDuplicates.labels((attributes as WeftEvents["inbox.duplicate"]).group).inc();
        return;
      default: {
        const decision = DECISIONS[name];
        if (decision !== undefined) {
          const a = attributes as { readonly path?: string; readonly method?: string };
          this.#decide(decision[0], decision[1], a.path ?? a.method ?? "");
        }
      }
    }
  }

  #decide(policy: string, decision: string, method: string): void {
    this.#decisions.labels(policy, decision, method).inc();
  }
}

/** The policy and decision of each resilience event counted by `weft_resilience_decisions_total`. */
const DECISIONS: Partial<Record<WeftEventName, readonly [string, string]>> = {
  "retry.attempt": ["retry", "attempt"],
  "retry.budget_exhausted": ["retry", "budget_exhausted"],
  "retry.pushback": ["retry", "pushback"],
  "hedge.sent": ["hedge", "sent"],
  "hedge.won": ["hedge", "won"],
  "fallback.used": ["fallback", "used"],
  "ratelimit.rejected": ["ratelimit", "rejected"],
  "bulkhead.rejected": ["bulkhead", "rejected"],
  "shed.dropped": ["shed", "dropped"],
};

/**
 * A breaker's label: its method path or service name; an instance breaker's (a node's `host:port`)
 * is `instance`, so no raw address becomes a label.
 */
function breakerLabel(name: string): string {
  return name.startsWith("/") || !/:\d+$/.test(name) ? name : "instance";
}
