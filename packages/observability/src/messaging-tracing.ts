/*
 * OpenTelemetry tracing for Weft messaging, as one message interceptor (publish and consume) that
 * follows the semantic conventions for messaging spans. It shares the RPC interceptors' tracer setup,
 * header carriers and parent rules (`tracing.ts`), so a call, a message and the calls its handler
 * makes form one trace.
 */
import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type TextMapPropagator,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import { ConfigError, currentCallContext } from "@weft/core";
import type { InterceptedMessage, MessageInterceptor, MessageStep } from "@weft/messaging";
import {
  extractFrom,
  inert,
  injectInto,
  layered,
  outgoingParent,
  type TracerSetup,
  tracerSetup,
} from "./trace-context.ts";
import { markFailed } from "./tracing.ts";

export interface MessagingTracingOptions {
  /** Where the tracer comes from. Default: the global provider, as `tracing()`. */
  tracerProvider?: TracerProvider;
  /**
   * How the producer's span context travels in the message headers (`traceparent`/`tracestate`).
   * Default: the global propagator, as `tracing()`.
   */
  propagator?: TextMapPropagator;
  /**
   * The parent of a `process` span. `message` (default): the context the message was published in
   * (its `publish` span), so producer and consumers are one trace; the span links to it as well.
   * `link`: a new trace (keeping the message's baggage) that only links to the publish span, the
   * conventions' general rule, for consumers whose traces should stay apart from their producers'.
   */
  processParent?: "message" | "link";
}

/**
 * A `MessageInterceptor` making one span per published message and one per delivery handled, as the
 * OpenTelemetry semantic conventions for messaging name them:
 *
 * - publish: a `PRODUCER` span `publish {destination}` (`messaging.operation.type` `send`,
 *   `messaging.operation.name` `publish`), child of the active context (inside a call or a handler:
 *   its span). Its context goes into the message's headers (`traceparent`, `tracestate`): the
 *   message's creation context.
 * - consume: a `CONSUMER` span `process {destination}` (`process`/`process`) around the handler, one
 *   per delivery, so a retried message shows a span per attempt. Its parent is the message's creation
 *   context (see `processParent`) and it links to it. The handler runs with it active, in
 *   OpenTelemetry's context and in Weft's call context alike, so the calls and publishes the handler
 *   makes are its children, even with no context manager installed.
 *
 * Attributes: `messaging.system` (the broker's name), `messaging.destination.name`,
 * `messaging.operation.type`, `messaging.operation.name`, `messaging.message.id`,
 * `messaging.message.conversation_id` (the correlation id, when set), `messaging.consumer.group.name`
 * (a group subscription's). On failure (the broker refused the publish, the handler threw):
 * `error.type` (the status code's name, `UNKNOWN` for a plain `Error`) and an `ERROR` status with the
 * error's message.
 *
 * ```ts
 * const messenger = createMessenger({ broker, interceptors: [messagingTracing()] });
 * ```
 *
 * With no SDK behind the global tracer provider, messages pass through untouched. Throws
 * `ConfigError` for a bad `processParent`.
 */
export function messagingTracing(options: MessagingTracingOptions = {}): MessageInterceptor {
  const processParent = options.processParent ?? "message";
  if (processParent !== "message" && processParent !== "link")
    throw new ConfigError("processParent", '"message" or "link"', options.processParent);
  const setup = tracerSetup(options);
  const byParent = processParent === "message";
  return (next) => (message) => {
    if (inert(setup)) return next(message);
    return message.side === "publish"
      ? tracePublish(setup, next, message)
      : traceProcess(setup, next, message, byParent);
  };
}

function tracePublish(setup: TracerSetup, next: MessageStep, message: InterceptedMessage): Promise<void> {
  const parent = outgoingParent(setup, message.headers);
  const span = setup.tracer.startSpan(
    `publish ${message.destination}`,
    { kind: SpanKind.PRODUCER, attributes: attributesOf(message, "send", "publish") },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  injectInto(setup, ctx, span.spanContext(), message.headers);
  return context.with(ctx, endWith, undefined, next, message, span);
}

function traceProcess(
  setup: TracerSetup,
  next: MessageStep,
  message: InterceptedMessage,
  byParent: boolean,
): Promise<void> {
  // the creation context alone: a broker may deliver inside whatever context its client ran in
  // (the memory broker: the publisher's), which is no parent of this processing
  const creation = extractFrom(setup, layered(ROOT_CONTEXT), message.headers);
  const created = trace.getSpanContext(creation);
  const links: Link[] = created !== undefined && isSpanContextValid(created) ? [{ context: created }] : [];
  const parent = byParent ? creation : trace.deleteSpan(creation);
  const span = setup.tracer.startSpan(
    `process ${message.destination}`,
    { kind: SpanKind.CONSUMER, attributes: attributesOf(message, "process", "process"), links },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  adoptInCallContext(setup, ctx, span, message);
  return context.with(ctx, endWith, undefined, next, message, span);
}

/**
 * Makes Weft's call context, which the messenger built from the message's headers, carry the process
 * span instead of the publish span: calls and publishes the handler makes then continue from it even
 * where OpenTelemetry's context does not reach (no context manager, an untraced client).
 */
function adoptInCallContext(setup: TracerSetup, ctx: Context, span: Span, message: InterceptedMessage): void {
  const call = currentCallContext();
  if (call?.requestHeaders === message.headers) injectInto(setup, ctx, span.spanContext(), call.propagate);
}

function attributesOf(message: InterceptedMessage, type: string, name: string): Attributes {
  const attributes: Attributes = {
    "messaging.system": message.system,
    "messaging.destination.name": message.destination,
    "messaging.operation.type": type,
    "messaging.operation.name": name,
    "messaging.message.id": message.id,
  };
  if (message.correlationId !== undefined)
    attributes["messaging.message.conversation_id"] = message.correlationId;
  if (message.group !== undefined) attributes["messaging.consumer.group.name"] = message.group;
  return attributes;
}

/** Runs the rest of the chain and ends `span` with it, failed when it throws. */
async function endWith(next: MessageStep, message: InterceptedMessage, span: Span): Promise<void> {
  try {
    await next(message);
  } catch (e) {
    markFailed(span, e);
    throw e;
  } finally {
    span.end();
  }
}
