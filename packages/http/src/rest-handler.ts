import type { IncomingMessage, ServerResponse } from "node:http";
import { createRegistry, type DescFile, type JsonWriteOptions, type Registry } from "@bufbuild/protobuf";
import {
  CONSOLE_LOGGER,
  Code,
  ConfigError,
  type Logger,
  type Metadata,
  Reason,
  type Server,
  WeftError,
} from "@weft/core";
import {
  loggerOption,
  metadataFromHttpHeaders,
  type OpenCall,
  openCall,
  type PeerTlsSocket,
  peerIdentityOf,
  peerOf,
  serverInternals,
  settleWithin,
} from "@weft/core/internal";
import { decodeTimeout } from "@weft/core/protocol";
import { checkContentType, readBody } from "./body.ts";
import { applyCors, type CorsOptions, preflight, resolveRestCors } from "./cors.ts";
import { RestError } from "./errors.ts";
import { PlanCache } from "./field-plan.ts";
import { parseAccept, VENDOR_TYPE } from "./negotiate.ts";
import { buildOpenApi, type OpenApiInfo, type OpenApiObject } from "./openapi.ts";
import { decodeMessage, parseJsonBody, requestJson } from "./request.ts";
import {
  addMetadata,
  errorSender,
  JSON_TYPE,
  methodNotAllowed,
  responseJson,
  send,
  sendNotAcceptable,
  TOKEN,
} from "./respond.ts";
import { compileRoutes, type Resolution, type Route, Router } from "./routes.ts";

export type { CorsOptions } from "./cors.ts";
export { sendNotFound } from "./respond.ts";

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
  /**
   * CORS. Off by default: no CORS headers, and preflights get a plain `Allow` answer. Allowed request
   * headers default to `content-type`, `accept`, `authorization`, the timeout header, `traceparent`,
   * `tracestate` and `baggage`; no response headers are exposed unless `exposeHeaders` names them.
   */
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
  /**
   * Where the gateway writes an unexpected error of its own (a bug: the request is answered 500),
   * as `error({ err }, "weft rest gateway:")`. Default `CONSOLE_LOGGER` (`console.error`).
   */
  logger?: Logger;
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
  const door = serverInternals(server);
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
  const logger = loggerOption("logger", options.logger, CONSOLE_LOGGER);
  const aliases = options.unversionedAliases ?? true;
  const defaultVersion = options.defaultVersion ?? "oldest";
  if (typeof defaultVersion !== "string" || defaultVersion === "") {
    throw new ConfigError("defaultVersion", '"oldest", "latest" or a version such as "2"', defaultVersion);
  }
  const v = defaultVersion.replace(/^v(?=[0-9])/, "");
  const ignoreUnknownFields = options.ignoreUnknownFields ?? true;
  const useProtoFieldName = options.json?.useProtoFieldName ?? false;
  const cors = resolveRestCors(options.cors, timeoutHeader);

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

  const sendError = errorSender(registry, trailerPrefix);

  const serve = async (
    req: IncomingMessage,
    res: ServerResponse,
    hit: Extract<Resolution, { kind: "route" }>,
    search: string,
  ): Promise<void> => {
    const route = hit.route;
    const vary = hit.alias ? { vary: "Accept" } : undefined;
    let ext: OpenCall | undefined;
    let readingBody = false;
    let failed: unknown;
    try {
      const headers = metadataOf(req, timeoutHeader);
      ext = openCall(door, {
        path: route.method.path,
        protocol: "http",
        headers,
        timeoutMs: timeoutOf(req.headers[timeoutHeader], timeoutHeader),
        serializer: "json",
        peer: peerOf(req.socket),
        // mounted on a `node:https` server: the client certificate of a mutual-TLS connection
        peerIdentity: peerIdentityOf(req.socket as PeerTlsSocket),
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
        const bytes = await settleWithin(readBody(req, maxBodyBytes), call.signal, undefined);
        readingBody = false;
        call.countReceived(bytes.length);
        body = parseJsonBody(bytes);
      }
      const json = requestJson(route, hit.segments, search, body, !ignoreUnknownFields);
      const message = decodeMessage(route.input, json, decodeOptions);
      if (route.oneway) {
        send(res, 202, "{}", JSON_TYPE, vary);
        await call.run(message).catch((e: unknown) => {
          failed = e;
          call.toWireError(e);
        });
        return;
      }
      // answer at the deadline (or a shutdown that gives up) even if the handler ignores its signal
      const result = await settleWithin(call.run(message), call.signal, undefined);
      if (result.stream) throw new Error(`${route.method.path} answered with a stream`);
      const payload = JSON.stringify(responseJson(route, result.message, writeOptions));
      const out: Record<string, string> = {};
      addMetadata(out, result.headers, "");
      addMetadata(out, result.trailers, trailerPrefix);
      if (vary !== undefined) out.vary = vary.vary;
      const sent = send(
        res,
        200,
        payload,
        hit.negotiated === undefined ? JSON_TYPE : `${VENDOR_TYPE}; version=${hit.negotiated}`,
        out,
      );
      call.countSent(sent);
    } catch (e) {
      failed = e;
      const error = e instanceof WeftError ? e : ext !== undefined ? ext.toWireError(e) : WeftError.from(e);
      // the rest of an unread body is read and dropped (up to a bound), so a client still sending
      // reads the answer; then the connection closes
      const extra = readingBody ? { ...vary, connection: "close" } : vary;
      sendError(res, error, extra, ext?.handlerContext.responseTrailers, readingBody ? req : undefined);
    } finally {
      ext?.finish(failed);
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
      logger.error({ err: e }, "weft rest gateway:");
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

/** The timeout header, read with the rule of Weft's `:timeout` (1 to 12 digits, docs/protocol.md §11). */
function timeoutOf(value: string | string[] | undefined, header: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === "string" ? decodeTimeout(value.trim()) : undefined;
  if (ms === undefined) {
    throw new RestError(
      400,
      Code.INVALID_ARGUMENT,
      Reason.BAD_TIMEOUT,
      `${header} must be a whole number of milliseconds (at most 12 digits)`,
    );
  }
  return ms;
}

function checkBasePath(basePath: string | undefined): string {
  if (basePath === undefined || basePath === "" || basePath === "/") return "";
  if (typeof basePath !== "string" || !/^(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)+$/.test(basePath)) {
    throw new ConfigError("basePath", 'a path such as "/api" (leading slash, no trailing slash)', basePath);
  }
  return basePath;
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
