/** CORS for the REST gateway: options checked once, headers on answers, preflight answers. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { ConfigError } from "@weft/core";

export interface CorsOptions {
  /** Origins allowed to call, or `"*"` for any. */
  allowOrigins: readonly string[] | "*";
  /** Request headers a browser may send. Default: `content-type`, `accept`, `authorization` and the timeout header. */
  allowHeaders?: readonly string[];
  /** Response headers a browser may read. Default: none beyond the CORS-safelisted ones. */
  exposeHeaders?: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (needs explicit origins, not `"*"`). */
  allowCredentials?: boolean;
  /** How long a browser may cache a preflight answer. Default 600. */
  maxAgeSeconds?: number;
}

/** `CorsOptions` checked and turned into header values once. */
export interface ResolvedCors {
  readonly origins: ReadonlySet<string> | "*";
  readonly allowHeaders: string;
  readonly exposeHeaders: string | undefined;
  readonly credentials: boolean;
  readonly maxAge: string;
}

/** Checks `cors` (a `ConfigError` for bad options); `undefined` when CORS is off. */
export function resolveCors(
  cors: CorsOptions | false | undefined,
  timeoutHeader: string,
): ResolvedCors | undefined {
  if (cors === undefined || cors === false) return undefined;
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
  return {
    origins: origins === "*" ? "*" : new Set(origins),
    allowHeaders: (cors.allowHeaders ?? ["content-type", "accept", "authorization", timeoutHeader]).join(
      ", ",
    ),
    exposeHeaders: cors.exposeHeaders === undefined ? undefined : cors.exposeHeaders.join(", "),
    credentials: cors.allowCredentials === true,
    maxAge: String(cors.maxAgeSeconds ?? 600),
  };
}

/** Sets the CORS headers of the answer to a request from an allowed origin. */
export function applyCors(cors: ResolvedCors, req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  if (cors.origins === "*") res.setHeader("access-control-allow-origin", "*");
  else {
    res.setHeader("vary", "Origin");
    if (!cors.origins.has(origin)) return;
    res.setHeader("access-control-allow-origin", origin);
  }
  if (cors.credentials) res.setHeader("access-control-allow-credentials", "true");
  if (cors.exposeHeaders !== undefined) res.setHeader("access-control-expose-headers", cors.exposeHeaders);
}

/** Answers `OPTIONS`: `Allow`, and for a CORS preflight from an allowed origin what it may send. */
export function preflight(
  res: ServerResponse,
  allow: readonly string[],
  cors: ResolvedCors | undefined,
  req: IncomingMessage,
): void {
  const headers: Record<string, string> = { allow: allow.join(", ") };
  if (
    cors !== undefined &&
    res.hasHeader("access-control-allow-origin") &&
    req.headers["access-control-request-method"] !== undefined
  ) {
    headers["access-control-allow-methods"] = allow.join(", ");
    headers["access-control-allow-headers"] = cors.allowHeaders;
    headers["access-control-max-age"] = cors.maxAge;
  }
  res.writeHead(204, headers);
  res.end();
}
