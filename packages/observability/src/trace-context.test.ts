/**
 * W3C trace context read and written directly: the same span contexts as OpenTelemetry's W3C
 * propagator extracts and injects, for well-formed and malformed headers alike; and which
 * propagators take that path.
 */
import {
  createContextKey,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { Metadata } from "@weft/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatTraceparent,
  layered,
  parseTraceparent,
  readTraceContext,
  w3cHeadersOf,
  writeTraceContext,
} from "./trace-context.ts";

const W3C = new W3CTraceContextPropagator();

/** What OpenTelemetry's W3C propagator extracts from these headers, as a plain record. */
function reference(traceparent: string, tracestate?: string): object | undefined {
  const carrier: Record<string, string> = { traceparent };
  if (tracestate !== undefined) carrier.tracestate = tracestate;
  const extracted = trace.getSpanContext(W3C.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
  return extracted === undefined ? undefined : plain(extracted);
}

function plain(span: SpanContext): object {
  return {
    traceId: span.traceId,
    spanId: span.spanId,
    traceFlags: span.traceFlags,
    isRemote: span.isRemote,
    traceState: span.traceState?.serialize(),
  };
}

function ours(traceparent: string, tracestate?: string): object | undefined {
  const headers = new Metadata({ traceparent });
  if (tracestate !== undefined) headers.set("tracestate", tracestate);
  const read = readTraceContext(headers);
  return read === undefined ? undefined : plain(read);
}

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID = "b7ad6b7169203331";

describe("parseTraceparent", () => {
  it.each([
    [`00-${TRACE_ID}-${SPAN_ID}-01`, "sampled"],
    [`00-${TRACE_ID}-${SPAN_ID}-00`, "not sampled"],
    [`00-${TRACE_ID}-${SPAN_ID}-03`, "other flags kept"],
    [` 00-${TRACE_ID}-${SPAN_ID}-01 `, "one blank either side"],
    [`01-${TRACE_ID}-${SPAN_ID}-01-later-fields`, "a later version's extra fields"],
    [`00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`, "upper-case hex"],
    [`ff-${TRACE_ID}-${SPAN_ID}-01`, "version ff"],
    [`00-${TRACE_ID}-${SPAN_ID}-01-extra`, "version 00 with extra fields"],
    [`01-${TRACE_ID}-${SPAN_ID}-01x`, "a later version without a dash after the flags"],
    [`00-${"0".repeat(32)}-${SPAN_ID}-01`, "all-zero trace id"],
    [`00-${TRACE_ID}-${"0".repeat(16)}-01`, "all-zero parent id"],
    [`00-${TRACE_ID}-${SPAN_ID}-1`, "short flags"],
    [`00-${TRACE_ID}-${SPAN_ID}`, "no flags"],
    [`00_${TRACE_ID}_${SPAN_ID}_01`, "wrong separators"],
    [`00-${TRACE_ID.slice(1)}g-${SPAN_ID}-01`, "not hex"],
    ["", "empty"],
  ])("%s (%s): as OpenTelemetry's W3C propagator reads it", (value) => {
    expect(ours(value)).toEqual(reference(value));
  });

  it("keeps the trace state", () => {
    const read = ours(`00-${TRACE_ID}-${SPAN_ID}-01`, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    expect(read).toMatchObject({ traceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", isRemote: true });
    expect(read).toEqual(
      reference(`00-${TRACE_ID}-${SPAN_ID}-01`, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    );
  });

  it("agrees with OpenTelemetry's W3C propagator on arbitrary near-valid headers", () => {
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
    const part = (n: number) => fc.oneof(hex(n), fc.constantFrom("0".repeat(n), "f".repeat(n)), fc.string());
    const header = fc
      .tuple(
        fc.constantFrom("", " ", "\t"),
        fc.oneof(fc.constantFrom("00", "01", "ff", "cc"), part(2)),
        fc.constantFrom("-", "_"),
        part(32),
        fc.constantFrom("-", "-", "+"),
        part(16),
        fc.constantFrom("-"),
        part(2),
        fc.constantFrom("", "-", "-x", "x"),
        fc.constantFrom("", " "),
      )
      .map((pieces) => pieces.join(""));
    fc.assert(
      fc.property(header, (value) => {
        expect(ours(value)).toEqual(reference(value));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("writeTraceContext", () => {
  it("writes what OpenTelemetry's W3C propagator injects", () => {
    for (const traceFlags of [TraceFlags.NONE, TraceFlags.SAMPLED, 3]) {
      const span: SpanContext = { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags };
      const headers = new Metadata();
      writeTraceContext(span, headers);
      const carrier: Record<string, string> = {};
      W3C.inject(trace.setSpanContext(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
      expect(headers.toJSON()).toEqual(carrier);
      expect(parseTraceparent(formatTraceparent(span))).toMatchObject({ traceId: TRACE_ID, traceFlags });
    }
  });

  it("writes nothing for the invalid span context (tracing suppressed)", () => {
    const headers = new Metadata();
    writeTraceContext(
      trace.wrapSpanContext({ traceId: "0".repeat(32), spanId: "0".repeat(16), traceFlags: 0 }).spanContext(),
      headers,
    );
    expect(headers.size).toBe(0);
  });
});

describe("w3cHeadersOf", () => {
  it("tells W3C trace context, with baggage or without, from any other propagator", () => {
    expect(w3cHeadersOf(W3C)).toBe("trace");
    const withBaggage = new CompositePropagator({ propagators: [new W3CBaggagePropagator(), W3C] });
    expect(w3cHeadersOf(withBaggage)).toBe("trace+baggage");
    expect(w3cHeadersOf(new W3CBaggagePropagator())).toBe("other");
    const b3 = { inject() {}, extract: (c: typeof ROOT_CONTEXT) => c, fields: () => ["b3"] };
    expect(w3cHeadersOf(b3)).toBe("other");
    expect(w3cHeadersOf(new CompositePropagator({ propagators: [W3C, b3] }))).toBe("other");
    // no propagator registered: OpenTelemetry's no-op, which carries nothing
    expect(w3cHeadersOf(propagation)).toBe("other");
  });
});

describe("layered", () => {
  it("holds the values OpenTelemetry's own context would, through any sets and deletes", () => {
    const keys = [0, 1, 2, 3].map((i) => createContextKey(`weft test key ${i}`));
    const op = fc.tuple(fc.boolean(), fc.nat(3), fc.integer());
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.nat(3), (ops, seeded) => {
        // a base with a value of its own, as the active context has (a span, baggage)
        let theirs = ROOT_CONTEXT.setValue(keys[seeded]!, "base");
        let ours = layered(theirs);
        for (const [set, k, value] of ops) {
          theirs = set ? theirs.setValue(keys[k]!, value) : theirs.deleteValue(keys[k]!);
          ours = set ? ours.setValue(keys[k]!, value) : ours.deleteValue(keys[k]!);
          for (const key of keys) expect(ours.getValue(key)).toBe(theirs.getValue(key));
        }
      }),
    );
  });

  it("is immutable: a context set from is unchanged", () => {
    const key = createContextKey("weft test key");
    const base = layered(ROOT_CONTEXT);
    const one = base.setValue(key, 1);
    const two = one.setValue(key, 2);
    expect([
      base.getValue(key),
      one.getValue(key),
      two.getValue(key),
      one.deleteValue(key).getValue(key),
    ]).toEqual([undefined, 1, 2, undefined]);
    expect(one.getValue(key)).toBe(1);
    expect(layered(one)).toBe(one);
  });

  it("carries spans as trace.setSpan and trace.getSpan see them", () => {
    const span = trace.wrapSpanContext({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    const ctx = trace.setSpan(layered(ROOT_CONTEXT), span);
    expect(trace.getSpan(ctx)).toBe(span);
    expect(trace.getSpan(trace.deleteSpan(ctx))).toBeUndefined();
  });
});
