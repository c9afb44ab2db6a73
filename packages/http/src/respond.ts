/** Writing the REST gateway's answers: JSON bodies, metadata as headers, errors as HTTP statuses. */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  create as createMessage,
  type DescMessage,
  isMessage,
  type JsonWriteOptions,
  type Registry,
  toJson,
} from "@bufbuild/protobuf";
import { Code, type Metadata, Reason, type WeftError } from "@weft/core";
import { httpHeadersFromMetadata } from "@weft/core/internal";
import { errorBody, httpStatusOf, RestError } from "./errors.ts";
import type { Route } from "./routes.ts";

export const JSON_TYPE = "application/json";

/** An HTTP token (a header name). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/**
 * Response metadata that must not become HTTP headers: besides core's `RESERVED_HTTP_HEADERS`
 * (transport, framing, gRPC and Connect headers), the ones this gateway sets itself.
 */
const GATEWAY_HEADERS: ReadonlySet<string> = new Set([
  "date",
  "vary",
  "allow",
  "access-control-allow-origin",
]);

/**
 * Writes a whole answer, merging `vary` with what CORS set; nothing once the response is gone.
 * `unread`: a request whose body is still arriving; the answer is written at once but ended (and
 * the connection closed) only once the rest of that body has been read and dropped. Returns the
 * body's length in bytes (0 when nothing was written).
 */
export function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  contentType: string,
  extra: Record<string, string> | undefined,
  unread?: IncomingMessage,
): number {
  if (res.destroyed) return 0;
  const headers: Record<string, string> = { ...extra };
  const vary = res.getHeader("vary");
  if (vary !== undefined && headers.vary !== undefined)
    headers.vary = `${String(vary)}, ${String(headers.vary)}`;
  headers["content-type"] = contentType;
  const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  headers["content-length"] = String(length);
  res.writeHead(status, headers);
  if (unread === undefined) {
    res.end(body);
    return length;
  }
  res.write(body);
  discardBody(unread, () => res.end());
  return length;
}

/**
 * How much more of a request body is read and dropped after an early answer (a 413, a deadline that
 * passed while the body arrived) so the client, still sending, gets to read that answer: closing
 * with unread bytes makes the kernel reset the connection, and the client sees EPIPE instead.
 */
export const DISCARD_BYTES = 16 * 1024 * 1024;

/**
 * Reads and drops the rest of `req`'s body, then calls `done` (also when the connection closes
 * first). A body that goes on past `DISCARD_BYTES` more, or declares more than that, is not waited
 * for: the connection is destroyed.
 */
export function discardBody(req: IncomingMessage, done: () => void): void {
  if (req.complete || req.destroyed) {
    done();
    return;
  }
  const declared = Number(req.headers["content-length"]);
  let left = DISCARD_BYTES;
  const finish = () => {
    req.off("data", onData);
    req.off("end", finish);
    req.off("close", finish);
    done();
  };
  const onData = (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) {
      finish();
      req.socket.destroy();
    }
  };
  if (declared > DISCARD_BYTES) {
    done();
    req.socket.destroy();
    return;
  }
  req.on("data", onData);
  req.on("end", finish);
  req.on("close", finish);
  req.resume();
}

/**
 * Answers one error: `extra` headers, and the handler's `trailers` when the call got that far;
 * `unread`, a request whose body is still arriving (see `send`).
 */
export type SendError = (
  res: ServerResponse,
  error: WeftError,
  extra?: Record<string, string>,
  trailers?: Metadata,
  unread?: IncomingMessage,
) => void;

/**
 * The gateway's error answer. Like gRPC and Connect, an error carries the handler's response
 * trailers (as prefixed headers, as on success) and the error's metadata (as headers); protobuf
 * details are decoded with `registry`.
 */
export function errorSender(registry: Registry, trailerPrefix: string): SendError {
  return (res, error, extra, trailers, unread) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (trailers !== undefined) addMetadata(headers, trailers, trailerPrefix);
    addMetadata(headers, error.metadata, "");
    if (error instanceof RestError) Object.assign(headers, error.headers);
    if (extra !== undefined) Object.assign(headers, extra);
    const status = error instanceof RestError ? error.httpStatus : httpStatusOf(error.code);
    send(res, status, JSON.stringify(errorBody(error, registry)), JSON_TYPE, headers, unread);
  };
}

/** The 404 a gateway answers for a path that is none of its routes (used by `listenRest`). */
export function sendNotFound(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? "/").split("?")[0]!;
  const error = new RestError(
    404,
    Code.NOT_FOUND,
    Reason.ROUTE_NOT_FOUND,
    `no route for ${req.method} ${path}`,
  );
  send(res, 404, JSON.stringify(errorBody(error, undefined)), JSON_TYPE, undefined);
}

export function methodNotAllowed(method: string, allow: readonly string[]): RestError {
  return new RestError(
    405,
    Code.UNIMPLEMENTED,
    Reason.METHOD_NOT_ALLOWED,
    `${method} is not allowed here (allowed: ${allow.join(", ")})`,
    {
      headers: { allow: allow.join(", ") },
    },
  );
}

export function sendNotAcceptable(
  res: ServerResponse,
  requested: readonly string[],
  supported: readonly string[],
): void {
  const error = new RestError(
    406,
    Code.INVALID_ARGUMENT,
    Reason.UNSUPPORTED_VERSION,
    `API version ${requested.join(", ")} is not served here; supported: ${supported.join(", ")}`,
    {
      details: [
        { type: "weft.SupportedVersions", value: { requested: [...requested], supported: [...supported] } },
      ],
    },
  );
  const body = JSON.stringify({ ...errorBody(error, undefined), supportedVersions: supported });
  send(res, 406, body, JSON_TYPE, { vary: "Accept" });
}

/** The response message as proto3 JSON, or the field `response_body` names. */
export function responseJson(route: Route, message: unknown, options: Partial<JsonWriteOptions>): unknown {
  const desc: DescMessage = route.output;
  const msg = isMessage(message, desc) ? message : createMessage(desc, (message ?? {}) as never);
  const json = toJson(desc, msg, options) as Record<string, unknown>;
  const field = route.responseBody;
  if (field === undefined) return json;
  const key = options.useProtoFieldName === true ? field.name : field.key;
  if (key in json) return json[key];
  // the field holds its default value, which proto3 JSON leaves out: answer that default
  const full = toJson(desc, msg, { ...options, alwaysEmitImplicit: true }) as Record<string, unknown>;
  return full[key] ?? (field.field.fieldKind === "message" ? {} : null);
}

/**
 * Adds metadata as response headers through core's mapping (which skips `RESERVED_HTTP_HEADERS` and
 * values HTTP cannot carry), `prefix`ed (trailers); also skips names that are no HTTP token and,
 * unprefixed, the headers the gateway owns.
 */
export function addMetadata(headers: Record<string, string>, md: Metadata, prefix: string): void {
  if (md.size === 0) return;
  const mapped = httpHeadersFromMetadata(md, {}, prefix);
  for (const name of Object.keys(mapped)) {
    if (!TOKEN.test(name) || (prefix === "" && GATEWAY_HEADERS.has(name))) continue;
    headers[name] = mapped[name]!;
  }
}
