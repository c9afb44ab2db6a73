import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { Server } from "@weft/core";
import {
  createListener,
  type Listener,
  type ListenerCloseOptions,
  serverInternals,
} from "@weft/core/internal";
import { createRestHandler, type RestHandler, type RestOptions, sendNotFound } from "./rest-handler.ts";

export interface RestListenOptions extends RestOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

/**
 * `timeoutMs`: how long requests in flight may take to finish before their connections are
 * destroyed (which cancels their calls). Default 10 s, like `Server.shutdown`.
 */
export type RestCloseOptions = ListenerCloseOptions;

export interface RestListener {
  readonly host: string;
  readonly port: number;
  readonly handler: RestHandler;
  /** The underlying `node:http` server. */
  readonly server: HttpServer;
  /**
   * Stops accepting, closes idle keep-alive connections and lets requests in flight finish; resolves
   * when every connection has closed. It always resolves: connections still open `timeoutMs` after
   * this call, or 1 s after the Weft server has stopped, whichever comes first, are destroyed, which
   * cancels their calls (a handler that ignores its signal, a client that never finishes sending its
   * request or never reads its response).
   */
  close(options?: RestCloseOptions): Promise<void>;
}

/**
 * Serves a Weft server's REST gateway on its own port; paths that are none of its routes get a JSON
 * 404. When the Weft server begins shutting down it stops accepting connections, answers later
 * requests on open connections with 503 and `Connection: close`, and lets in-flight calls finish
 * (the Weft server's shutdown waits for them); once it has stopped, connections still open are
 * destroyed after a short grace. Errors of the listening socket (e.g. `EMFILE` on accept) are
 * reported to the Weft server's `onError` and do not stop the listener.
 */
export async function listenRest(server: Server, options: RestListenOptions = {}): Promise<RestListener> {
  const internals = serverInternals(server);
  const handler = createRestHandler(server, options);
  /** Requests whose response has not closed yet. */
  let active = 0;
  const http = createHttpServer((req, res) => {
    active++;
    if (listener.draining) res.setHeader("connection", "close");
    res.once("close", () => {
      active--;
      if (!listener.draining) return;
      // with no request left, what remains is idle or has not sent a whole request: close it all
      if (active > 0) http.closeIdleConnections();
      else http.closeAllConnections();
    });
    handler(req, res).then((handled) => {
      if (!handled) sendNotFound(req, res);
    });
  });
  const listener: Listener = createListener(http, server, {
    report: (error) => internals.report(error, undefined),
    events: { protocol: "http", telemetry: internals.telemetry },
    drain: () => {
      http.closeIdleConnections();
      if (active === 0) http.closeAllConnections();
    },
  });
  const address = await listener.listen({ host: options.host, port: options.port });
  internals.bound("http", address);
  return {
    ...address,
    handler,
    server: http,
    close: (closeOptions) => listener.close(closeOptions),
  };
}
