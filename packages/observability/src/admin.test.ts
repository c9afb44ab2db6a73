/**
 * The admin endpoint over real HTTP against a real server listening on TCP and registering in the
 * memory registry: readiness across listen → registerWith → shutdown, liveness, metrics, and the
 * endpoint closing with the server.
 */
import {
  ConfigError,
  createClient,
  createMemoryRegistry,
  createServer,
  createTcpTransport,
  defineService,
  messageType,
  unary,
} from "@weft/core";
import { describe, expect, it, vi } from "vitest";
import { listenAdmin, metrics } from "./index.ts";

const Svc = defineService("test.Svc", { get: unary(messageType<string>(), messageType<string>()) });

async function get(port: number, path: string, method = "GET") {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

describe("listenAdmin()", () => {
  it("is ready once listening and registered, and not ready from the moment shutdown starts", async () => {
    const m = metrics();
    const server = createServer({ interceptors: [m.server], telemetry: m.telemetry });
    server.register(Svc, { get: async (s) => s });
    const admin = await listenAdmin(server, {
      port: 0,
      host: "127.0.0.1",
      registry: m.registry,
      awaitRegistration: true,
    });
    expect(await get(admin.port, "/readyz")).toMatchObject({ status: 503, body: "not listening\n" });
    expect(await get(admin.port, "/healthz")).toMatchObject({ status: 200, body: "ok\n" });

    const { port } = await server.listen({ host: "127.0.0.1" });
    expect(await get(admin.port, "/readyz")).toMatchObject({ status: 503, body: "not registered\n" });

    let ready = false;
    const registry = createMemoryRegistry();
    const registering = server.registerWith(registry, { ready: () => ready, readyIntervalMs: 1 });
    expect(await get(admin.port, "/readyz")).toMatchObject({ status: 503, body: "registering\n" });
    ready = true;
    await registering;
    expect(await get(admin.port, "/readyz")).toMatchObject({ status: 200, body: "ready\n" });

    const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
    await createClient(Svc, transport).get("a");
    await transport.close();
    const scraped = await get(admin.port, "/metrics");
    expect(scraped.status).toBe(200);
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(scraped.body).toContain('weft_server_calls_total{service="test.Svc",method="get",code="OK"} 1');

    // shutdown leaves the registry first (state `leaving`) and serves calls for deregisterDelayMs
    const states: string[] = [];
    server.onStateChange((s) => states.push(s));
    const stopped = server.shutdown({ deregisterDelayMs: 100 });
    await vi.waitFor(() => expect(server.state).toBe("leaving"));
    expect(await get(admin.port, "/readyz")).toMatchObject({
      status: 503,
      body: "shutting down (leaving)\n",
    });
    expect(await get(admin.port, "/healthz")).toMatchObject({ status: 200 });
    await stopped;
    expect(states).toEqual(["leaving", "draining", "stopped"]);
    // the endpoint closed with the server
    await expect(get(admin.port, "/healthz")).rejects.toThrow();
  });

  it("is ready on listen alone without awaitRegistration; answers 404 and 405 otherwise", async () => {
    const server = createServer();
    const admin = await listenAdmin(server, { port: 0, host: "127.0.0.1" });
    await server.listen({ host: "127.0.0.1" });
    expect(await get(admin.port, "/readyz")).toMatchObject({ status: 200 });
    expect(await get(admin.port, "/metrics")).toMatchObject({ status: 404 });
    expect(await get(admin.port, "/nope")).toMatchObject({ status: 404 });
    expect(await get(admin.port, "/healthz", "POST")).toMatchObject({ status: 405 });
    await admin.close();
    await server.shutdown();
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    const server = createServer();
    expect(() => listenAdmin(server, { port: -1 })).toThrow(ConfigError);
    expect(() => listenAdmin(server, { port: 0, registry: {} as never })).toThrow(/registry/);
    expect(() => listenAdmin({} as never, { port: 0 })).toThrow(/server/);
  });
});
