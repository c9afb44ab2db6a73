/*
 * The admin endpoint: Prometheus metrics, liveness and readiness of one Weft server over plain
 * `node:http`, on a port of its own (never the port calls come in on).
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { ConfigError, type Server } from "@weft/core";
import { serverInternals } from "@weft/core/internal";
import { Registry } from "prom-client";

export interface AdminOptions {
  /** The TCP port; 0 picks a free one (see `AdminEndpoint.port`). */
  port: number;
  /** The address to listen on. Default: every interface (Node's default), so probes and scrapers reach it. */
  host?: string;
  /** The metrics served at `/metrics` (`metrics().registry`). Default: none, and `/metrics` answers 404 (not found). */
  registry?: Registry;
  /**
   * Not ready until `registerWith` has succeeded at least once, for a server that registers only
   * some time after it listens. Default `false`: ready once it listens and no `registerWith` is
   * under way.
   */
  awaitRegistration?: boolean;
}

/** A listening admin endpoint. */
export interface AdminEndpoint {
  readonly host: string;
  readonly port: number;
  /** Stops listening (it also stops when the server reaches `stopped`). */
  close(): Promise<void>;
}

/**
 * Serves, on its own HTTP port:
 *
 * - `GET /metrics`: `registry` in Prometheus' text format.
 * - `GET /healthz` (liveness): 200 `ok` while the process serves this server, 503 once it stopped.
 * - `GET /readyz` (readiness): 200 `ready` when the server listens (Weft TCP, gRPC or REST), no
 *   `registerWith` is under way (and one succeeded, with `awaitRegistration`) and shutdown has not
 *   begun; else 503 with the reason. From the moment shutdown starts (state `leaving`, then
 *   `draining`) it answers 503, as the gRPC health service answers `NOT_SERVING`.
 *
 * It closes when the server reaches `stopped`. Bad options throw `ConfigError`; a port in use rejects.
 *
 * ```ts
 * const m = metrics();
 * const server = createServer({ interceptors: [m.server], telemetry: m.telemetry });
 * await server.listen({ port: 4000 });
 * await listenAdmin(server, { port: 9464, registry: m.registry });
 * ```
 */
export function listenAdmin(server: Server, options: AdminOptions): Promise<AdminEndpoint> {
  const internals = serverInternals(server);
  const { port, host, registry } = options ?? {};
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError("port", "a TCP port (0–65535; 0 picks a free one)", port);
  }
  if (host !== undefined && typeof host !== "string")
    throw new ConfigError("host", "a host name or address", host);
  if (registry !== undefined && !(registry instanceof Registry)) {
    throw new ConfigError("registry", "a prom-client Registry (metrics().registry)", registry);
  }
  const awaitRegistration = options.awaitRegistration === true;

  const notReady = (): string | undefined => {
    if (server.state !== "serving") return `shutting down (${server.state})`;
    const r = internals.readiness;
    if (!r.listening) return "not listening";
    if (r.registering > 0) return "registering";
    if (awaitRegistration && r.registered === 0) return "not registered";
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      reply(res, 405, "method not allowed\n");
      return;
    }
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/healthz") {
      if (server.state === "stopped") reply(res, 503, "stopped\n");
      else reply(res, 200, "ok\n");
    } else if (path === "/readyz") {
      const reason = notReady();
      if (reason === undefined) reply(res, 200, "ready\n");
      else reply(res, 503, `${reason}\n`);
    } else if (path === "/metrics" && registry !== undefined) {
      registry.metrics().then(
        (text) => reply(res, 200, text, registry.contentType),
        (error: unknown) => reply(res, 500, `${String(error)}\n`),
      );
    } else {
      reply(res, 404, "not found\n");
    }
  };

  const http = createHttpServer(handle);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      unsubscribe();
      http.close(() => resolve());
      http.closeAllConnections();
    });
    return closing;
  };
  const unsubscribe = server.onStateChange((state) => {
    if (state === "stopped") void close();
  });
  return new Promise<AdminEndpoint>((resolve, reject) => {
    http.once("error", (error) => {
      unsubscribe();
      reject(error);
    });
    http.listen(port, host, () => {
      const address = http.address();
      const bound = typeof address === "object" && address !== null ? address : { address: host ?? "", port };
      resolve({ host: bound.address, port: bound.port, close });
    });
  });
}

function reply(res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}
