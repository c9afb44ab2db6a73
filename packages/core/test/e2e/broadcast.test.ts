/** Broadcast and multicast over real sockets to real servers, through the client's interceptors. */
import { afterEach, describe, expect, it } from "vitest";
import {
  broadcast,
  Code,
  createClient,
  createMemoryRegistry,
  createTcpTransport,
  type Interceptor,
  multicast,
  type Server,
  type Transport,
} from "../../src/index.ts";
import { Echo, echoHandlers, startServer } from "../fixtures.ts";

const servers: Server[] = [];
const transports: Transport[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

/** Echo servers whose `echo` answers with the request headers it received. */
async function headerEchoServers(count: number): Promise<string[]> {
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    const { server, address } = await startServer((s) =>
      s.register(Echo, {
        ...echoHandlers,
        echo: (req, ctx) => ({ text: req.text, headers: Object.fromEntries(ctx.requestHeaders) }),
      }),
    );
    servers.push(server);
    addresses.push(address);
  }
  return addresses;
}

describe("broadcast over TCP", () => {
  it("each server receives the header an interceptor set for its call, and nobody else's", async () => {
    const addresses = await headerEchoServers(3);
    const transport = createTcpTransport({ address: addresses });
    transports.push(transport);
    const seen: string[] = [];
    const stamp: Interceptor = (next) => (call) => {
      seen.push(call.method.path);
      call.headers.set("authorization", "Bearer token");
      call.headers.set("x-seq", String(seen.length));
      return next(call);
    };
    const client = createClient(Echo, transport, { interceptors: [stamp], headers: { "x-client": "c" } });
    const outcomes = await broadcast(client, "echo", { text: "hi" }, { timeoutMs: 5000 });
    expect(seen).toEqual(Array(3).fill("/test.v1.Echo/echo"));
    expect(outcomes.map((o) => o.node)).toEqual(addresses);
    const received = outcomes.map((o) => (o.ok ? (o.message.headers ?? {}) : {}));
    expect(received.map((h) => h.authorization)).toEqual(Array(3).fill("Bearer token"));
    expect(received.map((h) => h["x-client"])).toEqual(["c", "c", "c"]);
    expect(received.map((h) => h["x-seq"]).sort()).toEqual(["1", "2", "3"]);
  });

  it("a stopped server is its node's outcome; multicast reaches its group only", async () => {
    const addresses = await headerEchoServers(2);
    await servers[1]!.shutdown({ timeoutMs: 1000 });
    const transport = createTcpTransport({ address: addresses });
    transports.push(transport);
    const client = createClient(Echo, transport);
    const outcomes = await broadcast(client, "echo", { text: "hi" }, { timeoutMs: 5000 });
    expect(outcomes.map((o) => o.ok || o.error.code)).toEqual([true, Code.UNAVAILABLE]);
    // static addresses carry no instance labels: no node is in any group
    await expect(multicast(client, "notify", { event: "e" }, { group: "canary" })).rejects.toMatchObject({
      reason: "NO_AVAILABLE_NODE",
    });
  });
});

describe("broadcast over a registry", () => {
  it("made right after the transport, waits for the membership's first set and reaches every instance", async () => {
    const [a, b] = await headerEchoServers(2);
    const registry = createMemoryRegistry();
    await registry.register({ services: [Echo.typeName], addresses: { weft: a! } });
    await registry.register({ services: [Echo.typeName], addresses: { weft: b! } });
    const transport = createTcpTransport({ discoveryFrom: registry, service: Echo.typeName });
    transports.push(transport);
    const client = createClient(Echo, transport);
    // the watch has not delivered the set yet: the broadcast waits for it instead of finding no node
    const outcomes = await broadcast(client, "echo", { text: "hi" }, { timeoutMs: 5000 });
    expect(outcomes.map((o) => o.node).sort()).toEqual([a, b].sort());
    expect(outcomes.every((o) => o.ok)).toBe(true);
    await registry.close();
  });
});
