/** CORS for the REST gateway: core's CORS with the gateway's defaults, and its preflight answers. */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type CorsOptions,
  preflightHeaders,
  type ResolvedCors,
  resolveCors,
  TRACE_HEADERS,
} from "@weft/core/internal";

export { applyCors } from "@weft/core/internal";
export type { CorsOptions, ResolvedCors };

/**
 * Checks `cors` (a `ConfigError` for bad options); `undefined` when CORS is off. Allowed request
 * headers default to `content-type`, `accept`, `authorization`, the timeout header and the trace
 * headers (`traceparent`, `tracestate`, `baggage`); no response headers are exposed by default.
 */
export function resolveRestCors(
  cors: CorsOptions | false | undefined,
  timeoutHeader: string,
): ResolvedCors | undefined {
  return resolveCors(cors, {
    allowHeaders: {
      required: [],
      defaults: ["content-type", "accept", "authorization", timeoutHeader, ...TRACE_HEADERS],
    },
    exposeHeaders: { required: [], defaults: [] },
  });
}

/** Answers `OPTIONS`: `Allow`, and for a CORS preflight from an allowed origin what it may send. */
export function preflight(
  res: ServerResponse,
  allow: readonly string[],
  cors: ResolvedCors | undefined,
  req: IncomingMessage,
): void {
  const methods = allow.join(", ");
  res.writeHead(204, { allow: methods, ...preflightHeaders(cors, req, res, methods) });
  res.end();
}
