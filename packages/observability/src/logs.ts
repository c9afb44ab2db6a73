/*
 * pino as Weft's `Logger`: lines written inside a call carry the call's trace and method, levels
 * come from the environment, and an optional access log writes one line per call.
 */
import { context, trace } from "@opentelemetry/api";
import {
  type Call,
  ConfigError,
  codeName,
  currentCallContext,
  type Interceptor,
  type Logger,
} from "@weft/core";
import {
  type DestinationStream,
  type Logger as PinoLogger,
  type LoggerOptions as PinoOptions,
  pino,
} from "pino";
import { type CallWatcher, endCode, watchCall } from "./call-end.ts";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
/** A pino level name. */
export type LogLevel = (typeof LEVELS)[number];

export interface LoggerOptions {
  /**
   * The part of the program this logger writes for (`core`, `grpc`, `orders`…), bound as
   * `component` on every line and looked up in `WEFT_LOG`. Default: none.
   */
  component?: string;
  /** The level. Default: from the environment (see `logLevel`), else `info`. */
  level?: LogLevel;
  /** Where the environment is read. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where lines go. Default: standard output, as pino writes it (one JSON object a line). */
  destination?: DestinationStream;
  /** More pino options (`redact`, `serializers`, `base`…); `level` and `mixin` are Weft's. */
  pino?: Omit<PinoOptions, "level" | "mixin">;
}

/**
 * The level the environment asks for `component`: its entry in `WEFT_LOG` (comma-separated
 * `component=level`, e.g. `core=debug,grpc=warn`; a bare `level` there applies to every component),
 * else `WEFT_LOG_LEVEL`, else `undefined`. An unknown level name throws `ConfigError` naming the variable.
 */
export function logLevel(
  component?: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): LogLevel | undefined {
  let found: LogLevel | undefined;
  for (const entry of (env.WEFT_LOG ?? "").split(",")) {
    const item = entry.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    const name = eq < 0 ? undefined : item.slice(0, eq).trim();
    const level = checkLevel("WEFT_LOG", (eq < 0 ? item : item.slice(eq + 1)).trim());
    if (name === undefined) found ??= level;
    else if (name === component) return level;
  }
  if (found !== undefined) return found;
  const global = env.WEFT_LOG_LEVEL;
  return global === undefined || global === "" ? undefined : checkLevel("WEFT_LOG_LEVEL", global.trim());
}

function checkLevel(variable: string, value: string): LogLevel {
  const level = value.toLowerCase();
  if (!(LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(variable, `a log level (${LEVELS.join(", ")})`, value);
  }
  return level as LogLevel;
}

/**
 * A pino logger that is Weft's `Logger` (pass it wherever Weft takes a `logger`). Every line written
 * while a call is handled (inside a handler, or anything it runs) carries `service` and `method` from
 * the call context, and `trace_id` and `span_id` of the active OpenTelemetry span (with `tracing()`
 * and a context manager: the handler's server span); without an active span, `trace_id` and
 * `span_id` come from the call's inbound `traceparent` (the caller's span).
 *
 * ```ts
 * const log = createLogger({ component: "orders" });
 * server.register(Orders, { place: async (req) => { log.info({ sku: req.sku }, "placing"); … } });
 * ```
 */
export function createLogger(options: LoggerOptions = {}): PinoLogger {
  const env = options.env ?? process.env;
  const level =
    options.level === undefined
      ? (logLevel(options.component, env) ?? "info")
      : checkLevel("level", options.level);
  const settings: PinoOptions = { ...options.pino, level, mixin: callFields };
  const logger = options.destination === undefined ? pino(settings) : pino(settings, options.destination);
  return options.component === undefined ? logger : logger.child({ component: options.component });
}

const NO_FIELDS = {};

/** The fields of the call being handled, for pino's `mixin`. */
function callFields(): object {
  const call = currentCallContext();
  const span = trace.getSpan(context.active())?.spanContext();
  if (call === undefined && span === undefined) return NO_FIELDS;
  const fields: Record<string, string> = {};
  if (span !== undefined && trace.isSpanContextValid(span)) {
    fields.trace_id = span.traceId;
    fields.span_id = span.spanId;
  } else if (call !== undefined) {
    // version-traceid-parentid-flags
    const parent = call.propagate.get("traceparent")?.split("-");
    if (parent !== undefined && parent.length >= 4) {
      fields.trace_id = parent[1]!;
      fields.span_id = parent[2]!;
    }
  }
  if (call !== undefined) {
    const slash = call.path.lastIndexOf("/");
    fields.service = call.path.slice(1, slash);
    fields.method = call.path.slice(slash + 1);
  }
  return fields;
}

/**
 * An interceptor writing one `info` line per call when it ends (a stream: when the stream ends):
 * `{ side, protocol, peer, service, method, code, duration_ms }`, message `call`. Give it to
 * `createServer` or `createClient`.
 */
export function accessLog(logger: Logger): Interceptor {
  if (logger === null || typeof logger !== "object" || typeof logger.info !== "function") {
    throw new ConfigError("logger", "a Logger (createLogger())", logger);
  }
  const watcher = new AccessLog(logger);
  return (next) => (call) => watchCall(next, call, watcher, undefined);
}

/** Writes the line of each call that ends; one for every call of an `accessLog()`. */
class AccessLog implements CallWatcher<undefined> {
  readonly timed = true;
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  end(_tag: undefined, call: Call, error: unknown, seconds: number): void {
    const path = call.method.path;
    this.#logger.info(
      {
        side: call.side,
        protocol: call.protocol,
        peer: call.peer,
        service: call.method.service.typeName,
        method: path.slice(path.lastIndexOf("/") + 1),
        code: codeName(endCode(error)),
        duration_ms: Math.round(seconds * 1e6) / 1000,
      },
      "call",
    );
  }
}
