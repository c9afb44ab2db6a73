/*
 * Metrics of Weft calls and connections, for Prometheus (prom-client, in a registry of their own)
 * and, optionally, through the OpenTelemetry metrics API with the semantic-convention names.
 */
import type { Attributes, MeterProvider, Histogram as OtelHistogram } from "@opentelemetry/api";
import {
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
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { type CallWatcher, watchCall } from "./call-end.ts";
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
 * Prometheus metrics (RED per method and side, streams, connections, shutdown) of every call that
 * goes through the interceptors and every event given to `telemetry`. Labels are bounded: service
 * and method names (from the service definitions), status code names, side, protocol, the peer
 * service a client dialed, a `Reason`; never an address or anything a caller sends.
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
  const registry = options.registry ?? new Registry();
  if (!(registry instanceof Registry)) throw new ConfigError("registry", "a prom-client Registry", registry);
  const buckets = options.buckets ?? DEFAULT_BUCKETS;
  if (
    !Array.isArray(buckets) ||
    buckets.length === 0 ||
    buckets.some(
      (b, i) => !(typeof b === "number" && b > 0 && Number.isFinite(b) && (i === 0 || b > buckets[i - 1]!)),
    )
  ) {
    throw new ConfigError("buckets", "ascending positive numbers of seconds", options.buckets);
  }
  const maxMethods = options.maxMethods ?? 1000;
  if (!Number.isInteger(maxMethods) || maxMethods < 1) {
    throw new ConfigError("maxMethods", "an integer ≥ 1", options.maxMethods);
  }
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

const METHOD_LABELS = ["service", "method"] as const;
const CODE_LABELS = ["service", "method", "code"] as const;

/** The metrics of one side (`weft_client_*` or `weft_server_*`). */
class SideMetrics {
  readonly #calls: Counter<(typeof CODE_LABELS)[number]>;
  readonly #duration: Histogram<(typeof CODE_LABELS)[number]>;
  readonly #inFlight: Gauge<(typeof METHOD_LABELS)[number]>;
  readonly #sent: Counter<(typeof METHOD_LABELS)[number]>;
  readonly #received: Counter<(typeof METHOD_LABELS)[number]>;
  readonly #methods = new Map<string, MethodMetrics>();
  /** What methods beyond `maxMethods` count under. */
  #other: MethodMetrics | undefined;
  readonly #maxMethods: number;
  readonly #side: "client" | "server";
  readonly otel: OtelHistogram | undefined;

  constructor(
    registry: Registry,
    side: "client" | "server",
    buckets: number[],
    maxMethods: number,
    otel: OtelHistogram | undefined,
  ) {
    const registers = [registry];
    const what = side === "server" ? "handled" : "made";
    this.#side = side;
    this.#maxMethods = maxMethods;
    this.otel = otel;
    this.#calls = new Counter({
      name: `weft_${side}_calls_total`,
      help: `Calls ${what}, by status code`,
      labelNames: CODE_LABELS,
      registers,
    });
    this.#duration = new Histogram({
      name: `weft_${side}_call_duration_seconds`,
      help: `Duration of calls ${what}, to the end of the response (stream)`,
      labelNames: CODE_LABELS,
      buckets,
      registers,
    });
    this.#inFlight = new Gauge({
      name: `weft_${side}_calls_in_flight`,
      help: `Calls ${what} that have not ended yet`,
      labelNames: METHOD_LABELS,
      registers,
    });
    this.#sent = new Counter({
      name: `weft_${side}_stream_messages_sent_total`,
      help: "Messages sent on streams",
      labelNames: METHOD_LABELS,
      registers,
    });
    this.#received = new Counter({
      name: `weft_${side}_stream_messages_received_total`,
      help: "Messages received on streams",
      labelNames: METHOD_LABELS,
      registers,
    });
  }

  observe(next: CallHandler, call: Call): Promise<CallResult> {
    const method = this.#method(call);
    method.inFlight.inc();
    return watchCall(next, call, new CallMetrics(method, call));
  }

  #method(call: Call): MethodMetrics {
    const path = call.method.path;
    const m = this.#methods.get(path);
    if (m !== undefined) return m;
    if (this.#methods.size >= this.#maxMethods) {
      this.#other ??= this.#make("other", "other", "other");
      return this.#other;
    }
    const made = this.#make(
      call.method.service.typeName,
      path.slice(path.lastIndexOf("/") + 1),
      path.slice(1),
    );
    this.#methods.set(path, made);
    return made;
  }

  #make(service: string, method: string, rpcMethod: string): MethodMetrics {
    const request = this.#side === "client" ? this.#sent : this.#received;
    const response = this.#side === "client" ? this.#received : this.#sent;
    return new MethodMetrics(this, service, method, rpcMethod, {
      inFlight: this.#inFlight.labels(service, method),
      request: request.labels(service, method),
      response: response.labels(service, method),
    });
  }

  /** The counter and histogram children of one method and code. */
  byCode(service: string, method: string, code: string): CodeMetrics {
    return {
      calls: this.#calls.labels(service, method, code),
      duration: this.#duration.labels(service, method, code),
    };
  }
}

interface CodeMetrics {
  readonly calls: Counter.Internal;
  readonly duration: Histogram.Internal<string>;
}

/** The label children of one method, made once: a call looks them up by its path only. */
class MethodMetrics {
  readonly inFlight: Gauge.Internal<string>;
  readonly request: Counter.Internal;
  readonly response: Counter.Internal;
  /** By status code (0–16), made on first use. */
  readonly #codes: (CodeMetrics | undefined)[] = [];
  readonly #side: SideMetrics;
  readonly #service: string;
  readonly #method: string;
  /** `rpc.method` of the OpenTelemetry attributes. */
  readonly rpcMethod: string;

  constructor(
    side: SideMetrics,
    service: string,
    method: string,
    rpcMethod: string,
    children: { inFlight: Gauge.Internal<string>; request: Counter.Internal; response: Counter.Internal },
  ) {
    this.#side = side;
    this.#service = service;
    this.#method = method;
    this.rpcMethod = rpcMethod;
    this.inFlight = children.inFlight;
    this.request = children.request;
    this.response = children.response;
  }

  get otel(): OtelHistogram | undefined {
    return this.#side.otel;
  }

  code(code: Code): CodeMetrics {
    let c = this.#codes[code];
    if (c === undefined) {
      c = this.#side.byCode(this.#service, this.#method, codeName(code));
      this.#codes[code] = c;
    }
    return c;
  }
}

/** One call being measured. */
class CallMetrics implements CallWatcher {
  readonly #method: MethodMetrics;
  readonly #call: Call;

  constructor(method: MethodMetrics, call: Call) {
    this.#method = method;
    this.#call = call;
  }

  request(): void {
    this.#method.request.inc();
  }

  response(): void {
    this.#method.response.inc();
  }

  end(code: Code, seconds: number): void {
    const m = this.#method;
    m.inFlight.dec();
    const c = m.code(code);
    c.calls.inc();
    c.duration.observe(seconds);
    const otel = m.otel;
    if (otel !== undefined) {
      const attributes: Attributes = {
        "rpc.method": m.rpcMethod,
        "rpc.response.status_code": codeName(code),
      };
      const protocol = this.#call.protocol;
      if (protocol !== undefined) attributes["rpc.system.name"] = SYSTEM[protocol];
      otel.record(seconds, attributes);
    }
  }
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

  constructor(registry: Registry) {
    const registers = [registry];
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
    }
  }
}
