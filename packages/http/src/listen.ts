import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { Server } from "@weft/core";
import { createRestHandler, type RestHandler, type RestOptions, sendNotFound } from "./rest-handler.ts";

export interface RestListenOptions extends RestOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface RestListener {
  readonly host: string;
  readonly port: number;
  readonly handler: RestHandler;
  /** The underlying `node:http` server. */
  readonly server: HttpServer;
  /** Stops accepting, lets requests in flight finish, closes idle keep-alive connections; resolves when closed. */
  close(): Promise<void>;
}

/**
 * Serves a Weft server's REST gateway on its own port; paths that are none of its routes get a JSON
 * 404. When the Weft server begins shutting down it stops accepting connections, answers later
 * requests on open connections with 503 and `Connection: close`, and lets in-flight calls finish
 * (the Weft server's shutdown waits for them).
 */
export async function listenRest(server: Server, options: RestListenOptions = {}): Promise<RestListener> {
  const handler = createRestHandler(server, options);
  let closing = false;
  let active = 0;
  const http = createHttpServer((req, res) => {
    active++;
    if (closing) res.setHeader("connection", "close");
    res.once("close", () => {
      active--;
      if (closing) http.closeIdleConnections();
    });
    handler(req, res).then((handled) => {
      if (!handled) sendNotFound(req, res);
    });
  });
  let closed: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      closing = true;
      unsubscribe();
      http.close(() => resolve());
      http.closeIdleConnections();
      if (active === 0) http.closeAllConnections();
    });
    return closed;
  };
  const unsubscribe = server.onStateChange((state) => {
    if (state !== "serving") void stop();
  });
  if (server.state !== "serving") {
    unsubscribe();
    throw new Error("the Weft server is shutting down");
  }
  const address = await new Promise<{ host: string; port: number }>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      http.off("error", reject);
      const a = http.address();
      if (a === null || typeof a === "string") reject(new Error("REST listener has no TCP address"));
      else resolve({ host: a.address, port: a.port });
    });
  }).catch((e: unknown) => {
    unsubscribe();
    throw e;
  });
  return { ...address, handler, server: http, close: stop };
}
