/*
 * CORS for the HTTP front ends (REST, gRPC-web and Connect): the options, checked once and turned
 * into header values, the headers of an answer to an allowed origin, and what a preflight may be
 * told. Each front end writes its own responses; this only decides the headers.
 */
import { ConfigError } from "../errors/weft-error.ts";

export interface CorsOptions {
  /** Origins allowed to call, or `"*"` for any. */
  allowOrigins: readonly string[] | "*";
  /** Request headers a browser may send. Each front end has its default (see its `cors` option). */
  allowHeaders?: readonly string[];
  /** Response headers a browser may read. Each front end has its default (see its `cors` option). */
  exposeHeaders?: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (needs explicit origins, not `"*"`). */
  allowCredentials?: boolean;
  /** How long a browser may cache a preflight answer. Default 600. */
  maxAgeSeconds?: number;
}

/** What a front end allows without being told: `required` always, `defaults` unless the options name their own. */
export interface CorsDefaults {
  readonly allowHeaders: { readonly required: readonly string[]; readonly defaults: readonly string[] };
  readonly exposeHeaders: { readonly required: readonly string[]; readonly defaults: readonly string[] };
}

/** `CorsOptions` checked and turned into header values once. */
export interface ResolvedCors {
  readonly origins: ReadonlySet<string> | "*";
  readonly allowHeaders: string;
  readonly exposeHeaders: string | undefined;
  readonly credentials: boolean;
  readonly maxAge: string;
}

/** The request side CORS reads: `node:http` and `node:http2` requests both fit. */
export interface CorsRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The response side CORS writes to before the answer's head goes out. */
export interface CorsResponse {
  setHeader(name: string, value: string): unknown;
  hasHeader(name: string): boolean;
}

/** Checks `cors` (a `ConfigError` naming the option); `undefined` when CORS is off. */
export function resolveCors(
  cors: CorsOptions | false | undefined,
  base: CorsDefaults,
): ResolvedCors | undefined {
  if (cors === undefined || cors === false) return undefined;
  if (cors === null || typeof cors !== "object") {
    throw new ConfigError("cors", "an object with allowOrigins, or false", cors);
  }
  const origins = cors.allowOrigins;
  if (origins !== "*" && !Array.isArray(origins)) {
    throw new ConfigError("cors.allowOrigins", 'an array of origins or "*"', origins);
  }
  if (origins === "*" && cors.allowCredentials === true) {
    throw new ConfigError(
      "cors.allowCredentials",
      'explicit allowOrigins (browsers refuse credentials with "*")',
      true,
    );
  }
  const maxAge = cors.maxAgeSeconds ?? 600;
  if (!Number.isInteger(maxAge) || maxAge < 0) {
    throw new ConfigError("cors.maxAgeSeconds", "a whole number of seconds ≥ 0", cors.maxAgeSeconds);
  }
  const allow = headerList("cors.allowHeaders", cors.allowHeaders, base.allowHeaders);
  const expose = headerList("cors.exposeHeaders", cors.exposeHeaders, base.exposeHeaders);
  return {
    origins: origins === "*" ? "*" : new Set(origins),
    allowHeaders: allow,
    exposeHeaders: expose === "" ? undefined : expose,
    credentials: cors.allowCredentials === true,
    maxAge: String(maxAge),
  };
}

function headerList(
  option: string,
  given: readonly string[] | undefined,
  base: CorsDefaults["allowHeaders"],
): string {
  if (given !== undefined && (!Array.isArray(given) || given.some((h) => typeof h !== "string"))) {
    throw new ConfigError(option, "an array of header names", given);
  }
  const names = new Set<string>();
  for (const h of base.required) names.add(h.toLowerCase());
  for (const h of given ?? base.defaults) names.add(h.toLowerCase());
  return [...names].join(", ");
}

/**
 * Sets the CORS headers of the answer to a request from an allowed origin; returns whether the
 * origin is allowed (false too for a request without `Origin`, which is not cross-origin).
 */
export function applyCors(cors: ResolvedCors, req: CorsRequest, res: CorsResponse): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string") return false;
  if (cors.origins === "*") res.setHeader("access-control-allow-origin", "*");
  else {
    res.setHeader("vary", "Origin");
    if (!cors.origins.has(origin)) return false;
    res.setHeader("access-control-allow-origin", origin);
  }
  if (cors.credentials) res.setHeader("access-control-allow-credentials", "true");
  if (cors.exposeHeaders !== undefined) res.setHeader("access-control-expose-headers", cors.exposeHeaders);
  return true;
}

/** True for a CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. */
export function isPreflight(method: string | undefined, req: CorsRequest): boolean {
  return (
    method === "OPTIONS" &&
    req.headers.origin !== undefined &&
    req.headers["access-control-request-method"] !== undefined
  );
}

/**
 * The headers that answer a preflight for `methods`, once `applyCors` allowed its origin on `res`;
 * `undefined` when it is no preflight or its origin is not allowed.
 */
export function preflightHeaders(
  cors: ResolvedCors | undefined,
  req: CorsRequest,
  res: CorsResponse,
  methods: string,
): Record<string, string> | undefined {
  if (
    cors === undefined ||
    !res.hasHeader("access-control-allow-origin") ||
    req.headers["access-control-request-method"] === undefined
  ) {
    return undefined;
  }
  return {
    "access-control-allow-methods": methods,
    "access-control-allow-headers": cors.allowHeaders,
    "access-control-max-age": cors.maxAge,
  };
}

/** Request headers browsers send with traces (W3C Trace Context and Baggage). */
export const TRACE_HEADERS: readonly string[] = ["traceparent", "tracestate", "baggage"];
