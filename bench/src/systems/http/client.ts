import { Pool } from "undici";
import { type BenchClient, isRecord } from "../../types.ts";
import { ECHO_ROUTE } from "./route.ts";

/** Keep-alive connections the client opens at most; calls beyond it queue in the pool (HTTP/1.1). */
const CONNECTIONS = 64;

/**
 * The client of both REST systems (`http` and `weft-rest`): an undici `Pool` of keep-alive HTTP/1.1
 * connections (no pipelining), POSTing `{"data":"<payloadBytes characters>"}` as `application/json`
 * and checking the echoed string. undici rather than `node:http`'s client: it spends about half the
 * CPU per request, so the client process saturates later and the figures say more about the server.
 */
export async function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 });
  const body = Buffer.from(JSON.stringify({ data: "a".repeat(payloadBytes) }));
  const request = {
    path: ECHO_ROUTE,
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  } as const;

  const echo = async (): Promise<void> => {
    const res = await pool.request(request);
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`rest: HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    const reply: unknown = JSON.parse(text);
    if (!isRecord(reply) || typeof reply.data !== "string" || reply.data.length !== payloadBytes) {
      throw new Error(`rest: unexpected echo reply: ${text.slice(0, 200)}`);
    }
  };
  // Fail before the warm-up if the server does not answer the route as expected.
  await echo();

  return {
    echo,
    stream: () => Promise.reject(new Error("rest: REST has no server streaming")),
    close: () => pool.close(),
  };
}
