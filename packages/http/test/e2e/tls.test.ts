/**
 * REST over TLS: `listenRest` serves cleartext only, but the handler mounted on a `node:https` server
 * sees the client certificate of a mutual-TLS connection, as the other front ends do.
 */
import { createServer as createHttpsServer, type Server as HttpsServer, request } from "node:https";
import { createServer } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admitOnlyClient, generateTlsMaterial } from "../../../core/test/tls-fixtures.ts";
import { createRestHandler } from "../../src/index.ts";
import { registerCatalog } from "../fixtures.ts";

const tls = generateTlsMaterial();
const callers: Array<string | undefined> = [];
const onlyClient = admitOnlyClient(callers);
const server = createServer({ onError: () => {}, interceptors: [onlyClient] });
let https: HttpsServer;
let port: number;

beforeAll(async () => {
  registerCatalog(server);
  const rest = createRestHandler(server);
  https = createHttpsServer(
    { key: tls.server.key, cert: tls.server.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: false },
    (req, res) => void rest(req, res),
  );
  await new Promise<void>((resolve) => https.listen(0, "127.0.0.1", resolve));
  port = (https.address() as { port: number }).port;
});
afterAll(async () => {
  https.closeAllConnections();
  await new Promise((resolve) => https.close(resolve));
  await server.shutdown({ timeoutMs: 1000 });
  tls.cleanup();
});

/** The HTTP status of `GET /v1/items/A-100` as `who` (no client certificate when undefined). */
function status(who: { key: Buffer; cert: Buffer } | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/v1/items/A-100", ca: tls.ca, agent: false, ...who },
      (res) => {
        res.resume();
        res.once("end", () => resolve(res.statusCode!));
      },
    );
    req.once("error", reject);
    req.end();
  });
}

describe("REST on a node:https server with mutual TLS", () => {
  it("an auth interceptor admits one client certificate, refuses another and an anonymous caller", async () => {
    callers.length = 0;
    expect(await status(tls.client)).toBe(200);
    expect(await status(tls.other)).toBe(403);
    expect(await status(undefined)).toBe(403);
    expect(await status(tls.rogue)).toBe(403); // not verified: no identity, whatever its names say
    expect(callers).toEqual(["weft-test-client", "weft-test-other", undefined, undefined]);
  });
});
