import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { type BenchServer, isRecord } from "../../types.ts";
import { ECHO_ROUTE } from "./route.ts";

/**
 * The REST anchor: a bare `node:http` server that parses `{"data":"…"}` and answers it back as JSON.
 * No router, no validation beyond the shape: what a hand-written JSON endpoint costs in Node.
 */
export async function startServer(): Promise<BenchServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
    if (req.method !== "POST" || req.url !== ECHO_ROUTE) {
      reply(res, 404, '{"error":"not found"}');
      return;
    }
    echo(req, res);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.listen({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("http server: no TCP address");

  return {
    port: address.port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function echo(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    let body: unknown;
    try {
      body = JSON.parse((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString("utf8"));
    } catch {
      reply(res, 400, '{"error":"invalid JSON"}');
      return;
    }
    if (!isRecord(body) || typeof body.data !== "string") {
      reply(res, 400, '{"error":"expected {\\"data\\": string}"}');
      return;
    }
    reply(res, 200, JSON.stringify({ data: body.data }));
  });
}

function reply(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(json),
  });
  res.end(json);
}
