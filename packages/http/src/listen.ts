import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { ConfigError, type Server } from "@weft/core";
import { armDeadline, type DeadlineTimer, type ServerCore } from "@weft/core/internal";
import { createRestHandler, type RestHandler, type RestOptions, sendNotFound } from "./rest-handler.ts";

export interface RestListenOptions extends RestOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
}

export interface RestCloseOptions {
  /**
   * How long requests in flight may take to finish before their connections are destroyed (which
   * cancels their calls). Default 10 s, like `Server.shutdown`.
   */
  timeoutMs?: number;
}

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
 * Once the Weft server has stopped, every call has been answered or cancelled: what is left on the
 * REST connections is the last bytes of responses (and clients that never sent a whole request).
 * They get this long before their connections are destroyed.
 */
const FLUSH_GRACE_MS = 1000;

/**
 * Serves a Weft server's REST gateway on its own port; paths that are none of its routes get a JSON
 * 404. When the Weft server begins shutting down it stops accepting connections, answers later
 * requests on open connections with 503 and `Connection: close`, and lets in-flight calls finish
 * (the Weft server's shutdown waits for them); once it has stopped, connections still open are
 * destroyed after a short grace. Errors of the listening socket (e.g. `EMFILE` on accept) are
 * reported to the Weft server's `onError` and do not stop the listener.
 */
export async function listenRest(server: Server, options: RestListenOptions = {}): Promise<RestListener> {
  const handler = createRestHandler(server, options);
  const core = server as unknown as ServerCore;
  let closing = false;
  let active = 0;
  const http = createHttpServer((req, res) => {
    active++;
    if (closing) res.setHeader("connection", "close");
    res.once("close", () => {
      active--;
      if (!closing) return;
      if (active > 0) http.closeIdleConnections();
      else {
        // with no request left, what remains is idle or has not sent a whole request: close it all
        http.closeAllConnections();
        settle();
      }
    });
    handler(req, res).then((handled) => {
      if (!handled) sendNotFound(req, res);
    });
  });

  let closed: Promise<void> | undefined;
  let resolveClosed: (() => void) | undefined;
  let listenerClosed = false;
  let done = false;
  let cutoff: { readonly at: number; readonly timer: DeadlineTimer } | undefined;
  /**
   * Closed once the listener and its connections are and every request has seen its `close`; one
   * turn later, so the calls those closes cancelled have been answered and released (microtasks).
   */
  const settle = (): void => {
    if (done || !listenerClosed || active > 0) return;
    done = true;
    cutoff?.timer.cancel();
    unsubscribe();
    setImmediate(() => resolveClosed?.());
  };
  const stopAccepting = (): Promise<void> => {
    if (closed !== undefined) return closed;
    closing = true;
    closed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    http.close(() => {
      listenerClosed = true;
      settle();
    });
    http.closeIdleConnections();
    if (active === 0) http.closeAllConnections();
    return closed;
  };
  /** Destroys every connection still open `ms` from now, unless an earlier cutoff is set. */
  const cutOffIn = (ms: number): void => {
    if (done) return;
    const at = Date.now() + ms;
    if (cutoff !== undefined) {
      if (cutoff.at <= at) return;
      cutoff.timer.cancel();
    }
    cutoff = { at, timer: armDeadline(at, () => http.closeAllConnections()) };
  };
  const unsubscribe = server.onStateChange((state) => {
    if (state === "serving") return;
    void stopAccepting();
    if (state === "stopped") cutOffIn(FLUSH_GRACE_MS);
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
  // An error on the listening socket after listen (an accept failing with EMFILE, …) must not crash
  // the process: node:http keeps accepting; report it like the Weft server's other errors.
  http.on("error", (e) => core.report(e, undefined));

  const close = (closeOptions: RestCloseOptions = {}): Promise<void> => {
    const timeoutMs = closeOptions.timeoutMs ?? 10_000;
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      throw new ConfigError("timeoutMs", "a number of milliseconds ≥ 0", timeoutMs);
    }
    const stopped = stopAccepting();
    cutOffIn(server.state === "stopped" ? Math.min(timeoutMs, FLUSH_GRACE_MS) : timeoutMs);
    return stopped;
  };
  return { ...address, handler, server: http, close };
}
