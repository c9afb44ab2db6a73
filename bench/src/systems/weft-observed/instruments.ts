/*
 * What each observability system installs on both sides of the `weft` echo. Tracing with the SDK
 * uses a `BatchSpanProcessor`, as a production set-up does: sampled spans are queued and exported
 * off the call's path (every 5 s or 512 spans, the SDK's defaults), into the in-memory exporter,
 * which is emptied every second to bound memory. A `SimpleSpanProcessor` exports each sampled span
 * as it ends (and the in-memory exporter answers through a `setTimeout(0)`): a set-up for tests and
 * debugging, not for production.
 */
import { context, type TextMapPropagator } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import type { Interceptor, Telemetry } from "@weft/core";
import { metrics, type Tracing, tracing } from "@weft/observability";

/** The observability systems of the bench, each the `weft` echo with something installed. */
export type Observed = "metrics" | "trace-noop" | "trace-1pct" | "trace-100pct" | "all";

/** Interceptors (outermost first) and the telemetry receiver of one side. */
export interface Instruments {
  interceptors: Interceptor[];
  telemetry: Telemetry | undefined;
}

/** Builds what `variant` installs on `side`; call once per process. */
export function instrumentsFor(variant: Observed, side: "client" | "server"): Instruments {
  const interceptors: Interceptor[] = [];
  let telemetry: Telemetry | undefined;
  if (variant === "metrics" || variant === "all") {
    const m = metrics();
    interceptors.push(m[side]);
    telemetry = m.telemetry;
  }
  const traced = tracingFor(variant);
  if (traced !== undefined) interceptors.unshift(traced[side]);
  return { interceptors, telemetry };
}

function tracingFor(variant: Observed): Tracing | undefined {
  switch (variant) {
    case "metrics":
      return undefined;
    case "trace-noop":
      // no SDK registered: the global provider and propagator are OpenTelemetry's no-ops
      return tracing();
    case "trace-1pct":
    case "all":
      return sdkTracing(0.01);
    case "trace-100pct":
      return sdkTracing(1);
  }
}

/**
 * The SDK as an application would set it up: a context manager (so a handler's calls are children
 * of its span; registered once per process), W3C trace context on the wire (or `propagator`), a
 * parent-based sampler (the server follows the client's decision) with `ratio` of the root spans
 * sampled, and a batching span processor.
 */
export function sdkTracing(
  ratio: number,
  propagator: TextMapPropagator = new W3CTraceContextPropagator(),
): Tracing {
  if (!contextManagerSet) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextManagerSet = true;
  }
  const exporter = new InMemorySpanExporter();
  setInterval(() => exporter.reset(), 1000).unref();
  const provider = new BasicTracerProvider({
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  return tracing({ tracerProvider: provider, propagator });
}

let contextManagerSet = false;
