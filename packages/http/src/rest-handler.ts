import type { IncomingMessage, ServerResponse } from "node:http";
import {
  create as createMessage,
  createRegistry,
  type DescFile,
  type DescMessage,
  isMessage,
  type JsonWriteOptions,
  type Registry,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConfigError, type Metadata, Reason, type Server, WeftError } from "@weft/core";
import {
  type ExternalCall,
  httpHeadersFromMetadata,
  metadataFromHttpHeaders,
  openExternalCall,
} from "@weft/core/internal";
import { errorBody, httpStatusOf, RestError } from "./errors.ts";
import { PlanCache } from "./field-plan.ts";
import { parseAccept, VENDOR_TYPE } from "./negotiate.ts";
import { buildOpenApi, type OpenApiInfo, type OpenApiObject } from "./openapi.ts";
import { decodeMessage, parseJsonBody, requestJson } from "./request.ts";
import { compileRoutes, type Resolution, type Route, Router } from "./routes.ts";

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

export interface RestOptions {
  /** Prefix of every route and of the OpenAPI document, e.g. `/api`. Default: none. */
  basePath?: string;
  /** Largest request body accepted; larger ones are answered 413 without being buffered. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Which version an unversioned alias (`/orders/1` for `/v1/orders/1` and `/v2/orders/1`) serves when
   * the request does not pick one with `Accept: application/vnd.weft+json; version=N`:
   * `"oldest"` (the default) keeps clients that never asked for a version on the contract they were
   * written against when a new version ships; `"latest"` moves them forward; a version such as `"2"`
   * pins it (paths that version lacks are then 404 without an explicit version).
   */
  defaultVersion?: string;
  /** Serve `/vN/…` routes also without their version prefix, negotiated by `Accept`. Default true. */
  unversionedAliases?: boolean;
  /** CORS. Off by default: no CORS headers, and preflights get a plain `Allow` answer. */
  cors?: CorsOptions | false;
  /** Request header carrying the call budget in milliseconds (the handler's deadline). Default `x-weft-timeout-ms`. */
  timeoutHeader?: string;
  /**
   * Ignore JSON fields and enum names the descriptors do not know (API evolution: a newer client talking to
   * an older server). Default true. False rejects them, and unknown query parameters, with a 400.
   */
  ignoreUnknownFields?: boolean;
  /** Proto3 JSON output: proto field names instead of lowerCamelCase, and fields with default values. */
  json?: { useProtoFieldName?: boolean; alwaysEmitImplicit?: boolean };
  /** The OpenAPI 3.1 document: `path` (default `/openapi.json`, under `basePath`), `info`, `servers`; false to not serve it. */
  openapi?: false | { path?: string; info?: OpenApiInfo; servers?: { url: string; description?: string }[] };
  /** Extra message types for `google.protobuf.Any` and for decoding protobuf error details. */
  registry?: Registry;
  /** Prefix of the HTTP headers that carry a response's trailers. Default `weft-trailer-`. */
  trailerPrefix?: string;
}

/** One REST route, as the gateway exposes it. */
export interface RestRoute {
  readonly httpMethod: string;
  /** The path template as declared, without the base path. */
  readonly pattern: string;
  /** The Weft method path, e.g. `/orders.v1.Orders/GetOrder`. */
  readonly methodPath: string;
  readonly version: string | undefined;
}

/**
 * Handles one HTTP request: resolves to `true` when it answered it, `false` when the path is not one of
 * its routes (so another handler, or a 404, can take it). Never rejects.
 */
export interface RestHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  readonly routes: readonly RestRoute[];
  /** The OpenAPI 3.1 document served at `GET <basePath>/openapi.json`. */
  readonly openapi: OpenApiObject;
  /** API versions served, oldest first. */
  readonly versions: readonly string[];
}

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

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const JSON_TYPE = "application/json";

/**
 * Creates the REST/JSON gateway of a Weft server. Routes come from the `google.api.http` options of
 * the services registered so far (create it after `register`), compiled once: path templates,
 * query parameters, bodies, unversioned aliases and the OpenAPI document. Calls go through the
 * server's interceptors and handlers with the same context, deadline and shutdown tracking as Weft's
 * own protocol.
 *
 * ```ts
 * const rest = createRestHandler(server, { basePath: "/api" });
 * createServer(async (req, res) => { if (!(await rest(req, res))) { res.statusCode = 404; res.end(); } });
 * ```
 */
export function createRestHandler(server: Server, options: RestOptions = {}): RestHandler {
  const basePath = checkBasePath(options.basePath);
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new ConfigError("maxBodyBytes", "a positive integer number of bytes", maxBodyBytes);
  }
  const timeoutHeader = (options.timeoutHeader ?? "x-weft-timeout-ms").toLowerCase();
  if (!TOKEN.test(timeoutHeader))
    throw new ConfigError("timeoutHeader", "an HTTP header name", options.timeoutHeader);
  const trailerPrefix = (options.trailerPrefix ?? "weft-trailer-").toLowerCase();
  if (!TOKEN.test(trailerPrefix))
    throw new ConfigError("trailerPrefix", "an HTTP header name prefix", options.trailerPrefix);
  const aliases = options.unversionedAliases ?? true;
  const defaultVersion = options.defaultVersion ?? "oldest";
  if (typeof defaultVersion !== "string" || defaultVersion === "") {
    throw new ConfigError("defaultVersion", '"oldest", "latest" or a version such as "2"', defaultVersion);
  }
  const v = defaultVersion.replace(/^v(?=[0-9])/, "");
  const ignoreUnknownFields = options.ignoreUnknownFields ?? true;
  const useProtoFieldName = options.json?.useProtoFieldName ?? false;
  const cors = checkCors(options.cors, timeoutHeader);

  const routes = compileRoutes(server.methods.values(), new PlanCache());
  const router = new Router(routes, { aliases, defaultVersion: v });
  if (v !== "oldest" && v !== "latest" && !router.versions.includes(v)) {
    throw new ConfigError(
      "defaultVersion",
      `"oldest", "latest" or a served version (${router.versions.join(", ") || "none"})`,
      defaultVersion,
    );
  }

  const registry = registryOf(routes, options.registry);
  const decodeOptions = { ignoreUnknownFields, registry };
  const writeOptions: Partial<JsonWriteOptions> = {
    useProtoFieldName,
    alwaysEmitImplicit: options.json?.alwaysEmitImplicit ?? false,
    registry,
  };
  const openapiOptions = options.openapi === false ? undefined : (options.openapi ?? {});
  const openapiPath = openapiOptions === undefined ? undefined : (openapiOptions.path ?? "/openapi.json");
  const openapi = buildOpenApi(routes, {
    basePath,
    useProtoFieldName,
    info: openapiOptions?.info,
    servers: openapiOptions?.servers,
    timeoutHeader,
    versions: router.versions,
    defaultVersion: v,
    aliases,
  });
  const openapiBody = Buffer.from(JSON.stringify(openapi));

  /**
   * Answers `error`. Like gRPC and Connect, an error carries the handler's response trailers (as
   * prefixed headers, as on success) and the error's metadata (as headers).
   */
  const sendError = (
    res: ServerResponse,
    error: WeftError,
    extra?: Record<string, string>,
    trailers?: Metadata,
  ) => {
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
    send(res, status, JSON.stringify(errorBody(error, registry)), JSON_TYPE, headers);
  };

  const serve = async (
    req: IncomingMessage,
    res: ServerResponse,
    hit: Extract<Resolution, { kind: "route" }>,
    search: string,
  ): Promise<void> => {
    const route = hit.route;
    const vary = hit.alias ? { vary: "Accept" } : undefined;
    let ext: ExternalCall | undefined;
    let readingBody = false;
    try {
      const headers = metadataOf(req, timeoutHeader);
      ext = openExternalCall(server, {
        path: route.method.path,
        headers,
        timeoutMs: timeoutOf(req.headers[timeoutHeader], timeoutHeader),
        serializer: "json",
        peer:
          req.socket.remoteAddress === undefined
            ? undefined
            : `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      });
      const call = ext;
      res.once("close", () => {
        if (!res.writableFinished) {
          call.cancel(
            new WeftError(Code.CANCELLED, "call cancelled by the client", { reason: Reason.CANCELLED }),
          );
        }
      });
      let body: unknown;
      if (route.body.kind !== "none") {
        checkContentType(req.headers["content-type"]);
        readingBody = true;
        // a client that stalls mid-body is given up on at the deadline (or shutdown), like a handler
        const bytes = await readBody(req, maxBodyBytes, call.signal);
        readingBody = false;
        body = parseJsonBody(bytes);
      }
      const json = requestJson(route, hit.segments, search, body, !ignoreUnknownFields);
      const message = decodeMessage(route.input, json, decodeOptions);
      if (route.oneway) {
        send(res, 202, "{}", JSON_TYPE, vary);
        await call.run(message).catch((e: unknown) => call.toWireError(e));
        return;
      }
      // answer at the deadline (or a shutdown that gives up) even if the handler ignores its signal
      const result = await untilAborted(call.run(message), call.signal);
      if (result.stream) throw new Error(`${route.method.path} answered with a stream`);
      const payload = JSON.stringify(responseJson(route, result.message, writeOptions));
      const out: Record<string, string> = {};
      addMetadata(out, result.headers, "");
      addMetadata(out, result.trailers, trailerPrefix);
      if (vary !== undefined) out.vary = vary.vary;
      send(
        res,
        200,
        payload,
        hit.negotiated === undefined ? JSON_TYPE : `${VENDOR_TYPE}; version=${hit.negotiated}`,
        out,
      );
    } catch (e) {
      const error = e instanceof WeftError ? e : ext !== undefined ? ext.toWireError(e) : WeftError.from(e);
      // the rest of an unread body is not waited for: the connection closes after the answer
      const extra = readingBody ? { ...vary, connection: "close" } : vary;
      sendError(res, error, extra, ext?.handlerContext.responseTrailers);
    } finally {
      ext?.finish();
    }
  };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    try {
      const url = req.url ?? "/";
      const q = url.indexOf("?");
      let path = q < 0 ? url : url.slice(0, q);
      if (basePath !== "") {
        if (!path.startsWith(basePath)) return false;
        path = path.slice(basePath.length);
        if (path === "") path = "/";
        else if (path.charCodeAt(0) !== 47) return false;
      }
      if (path.charCodeAt(0) !== 47) return false;
      const method = req.method ?? "GET";
      if (openapiPath !== undefined && path === openapiPath) {
        if (cors !== undefined) applyCors(cors, req, res);
        if (method === "GET" || method === "HEAD") send(res, 200, openapiBody, JSON_TYPE, undefined);
        else if (method === "OPTIONS") preflight(res, ["GET", "HEAD", "OPTIONS"], cors, req);
        else sendError(res, methodNotAllowed(method, ["GET", "HEAD", "OPTIONS"]));
        return true;
      }
      const segments = path.slice(1).split("/");
      if (method === "OPTIONS") {
        const allow = router.allowedAt(segments);
        if (allow === undefined) return false;
        if (cors !== undefined) applyCors(cors, req, res);
        preflight(res, allow, cors, req);
        return true;
      }
      const hit = router.resolve(
        method === "HEAD" ? "GET" : method,
        segments,
        parseAccept(req.headers.accept),
      );
      if (hit === undefined) return false;
      if (cors !== undefined) applyCors(cors, req, res);
      switch (hit.kind) {
        case "route":
          await serve(req, res, hit, q < 0 ? "" : url.slice(q + 1));
          return true;
        case "method-not-allowed":
          sendError(res, methodNotAllowed(method, hit.allow));
          return true;
        case "not-acceptable":
          sendNotAcceptable(res, hit.requested, hit.supported);
          return true;
        case "not-in-default":
          sendError(
            res,
            new RestError(
              404,
              Code.NOT_FOUND,
              Reason.ROUTE_NOT_FOUND,
              `${path} is not served in the default version ${hit.version}; it is served in version ${hit.available.join(", ")}: ask with Accept: ${VENDOR_TYPE}; version=N or use /vN${path}`,
            ),
          );
          return true;
      }
    } catch (e) {
      // only a bug gets here: answer rather than leave the client hanging
      console.error("weft rest gateway:", e);
      try {
        if (!res.headersSent) sendError(res, new WeftError(Code.INTERNAL, "internal error"));
        else res.destroy();
      } catch {
        res.destroy();
      }
      return true;
    }
  };

  return Object.assign(handler, {
    routes: routes.map(
      (r): RestRoute => ({
        httpMethod: r.httpMethod,
        pattern: r.pattern,
        methodPath: r.method.path,
        version: r.version,
      }),
    ),
    openapi,
    versions: router.versions,
  });
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

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  contentType: string,
  extra: Record<string, string> | undefined,
): void {
  if (res.destroyed) return;
  const headers: Record<string, string> = { ...extra };
  const vary = res.getHeader("vary");
  if (vary !== undefined && headers.vary !== undefined)
    headers.vary = `${String(vary)}, ${String(headers.vary)}`;
  headers["content-type"] = contentType;
  headers["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.length);
  res.writeHead(status, headers);
  res.end(body);
}

/** `promise`, or the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function methodNotAllowed(method: string, allow: readonly string[]): RestError {
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

function sendNotAcceptable(
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

function responseJson(route: Route, message: unknown, options: Partial<JsonWriteOptions>): unknown {
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
 * The call's request metadata: core's mapping, so a handler sees the same headers over REST as over
 * gRPC and Connect (no transport, framing, gRPC or Connect headers), and without the timeout header,
 * which the deadline carries.
 */
function metadataOf(req: IncomingMessage, timeoutHeader: string): Metadata {
  const md = metadataFromHttpHeaders(req.headers);
  md.delete(timeoutHeader);
  return md;
}

function timeoutOf(value: string | string[] | undefined, header: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^[0-9]{1,12}$/.test(value.trim())) {
    throw new RestError(
      400,
      Code.INVALID_ARGUMENT,
      Reason.BAD_TIMEOUT,
      `${header} must be a whole number of milliseconds`,
    );
  }
  return Number(value.trim());
}

function checkContentType(value: string | undefined): void {
  if (value === undefined) return;
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  if (type === JSON_TYPE || type.endsWith("+json")) return;
  throw new RestError(
    415,
    Code.INVALID_ARGUMENT,
    Reason.UNSUPPORTED_MEDIA_TYPE,
    `request bodies must be JSON (Content-Type: application/json), got ${JSON.stringify(type)}`,
  );
}

/**
 * Reads the body up to `limit` bytes; past it, a 413 (the rest is discarded by node:http, not buffered).
 * Stops with the signal's reason when it aborts (deadline, shutdown): a client that stalls mid-body
 * does not hold the call. Every listener it adds is removed when it settles.
 */
function readBody(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<Uint8Array> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit));
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(
        new WeftError(Code.CANCELLED, `request body aborted: ${e.message}`, { reason: Reason.CANCELLED }),
      );
    };
    const onAborted = () => onError(new Error("the client closed the connection"));
    const onSignal = () => {
      cleanup();
      reject(signal.reason);
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onAborted);
      signal.removeEventListener("abort", onSignal);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onAborted);
    signal.addEventListener("abort", onSignal, { once: true });
  });
}

function tooLarge(limit: number): RestError {
  return new RestError(
    413,
    Code.RESOURCE_EXHAUSTED,
    Reason.MESSAGE_TOO_LARGE,
    `request body larger than ${limit} bytes`,
    { headers: { connection: "close" } },
  );
}

/**
 * Adds metadata as response headers through core's mapping (which skips `RESERVED_HTTP_HEADERS` and
 * values HTTP cannot carry), `prefix`ed (trailers); also skips names that are no HTTP token and,
 * unprefixed, the headers the gateway owns.
 */
function addMetadata(headers: Record<string, string>, md: Metadata, prefix: string): void {
  if (md.size === 0) return;
  const mapped = httpHeadersFromMetadata(md, {}, prefix);
  for (const name of Object.keys(mapped)) {
    if (!TOKEN.test(name) || (prefix === "" && GATEWAY_HEADERS.has(name))) continue;
    headers[name] = mapped[name]!;
  }
}

function checkBasePath(basePath: string | undefined): string {
  if (basePath === undefined || basePath === "" || basePath === "/") return "";
  if (typeof basePath !== "string" || !/^(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)+$/.test(basePath)) {
    throw new ConfigError("basePath", 'a path such as "/api" (leading slash, no trailing slash)', basePath);
  }
  return basePath;
}

interface ResolvedCors {
  readonly origins: ReadonlySet<string> | "*";
  readonly allowHeaders: string;
  readonly exposeHeaders: string | undefined;
  readonly credentials: boolean;
  readonly maxAge: string;
}

function checkCors(cors: CorsOptions | false | undefined, timeoutHeader: string): ResolvedCors | undefined {
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

function applyCors(cors: ResolvedCors, req: IncomingMessage, res: ServerResponse): void {
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

function preflight(
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

function registryOf(routes: readonly Route[], extra: Registry | undefined): Registry {
  const files = new Set<DescFile>();
  const add = (file: DescFile) => {
    if (files.has(file)) return;
    files.add(file);
    for (const dep of file.dependencies) add(dep);
  };
  for (const route of routes) add(route.input.file);
  for (const route of routes) add(route.output.file);
  return extra === undefined ? createRegistry(...files) : createRegistry(extra, ...files);
}
