/**
 * The telemetry hook over real TCP: a server and a transport given a `Telemetry` report their
 * connections opening and closing (per side), goaway sent and received, a stream sender stalled by
 * flow control, and shutdown progress; a receiver that throws breaks nothing; calls know their
 * protocol and peer on both sides.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Call,
  createClient,
  createLocalRegistry,
  createTcpTransport,
  type Interceptor,
  type Server,
  type Telemetry,
  type Transport,
  type WeftEventName,
  type WeftEvents,
} from "../../src/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, echoHandlers, startServer } from "../fixtures.ts";

type Recorded = { [N in WeftEventName]: { name: N; attributes: WeftEvents[N] } }[WeftEventName];

function recorder(): Telemetry & {
  events: Recorded[];
  named<N extends WeftEventName>(n: N): WeftEvents[N][];
} {
  const events: Recorded[] = [];
  return {
    events,
    event(name, attributes) {
      events.push({ name, attributes } as Recorded);
    },
    named<N extends WeftEventName>(n: N) {
      return events.filter((e) => e.name === n).map((e) => e.attributes as WeftEvents[N]);
    },
  };
}

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

/** Bounded wait for something asynchronous on real sockets (a close the peer sees). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe("telemetry", () => {
  it("names the peer's service on a client's connections to instances found in a registry", async () => {
    const { server, address } = await startServer((s) => s.register(Echo, echoHandlers));
    servers.push(server);
    const registry = createLocalRegistry({ directory: mkdtempSync(join(tmpdir(), "weft-telemetry-")) });
    await registry.register({ services: [Echo.typeName], addresses: { weft: address } });
    const found = recorder();
    const byTarget = createTcpTransport({
      discoveryFrom: registry,
      service: Echo.typeName,
      telemetry: found,
    });
    const byAddress = recorder();
    const direct = createTcpTransport({ address, telemetry: byAddress });
    transports.push(byTarget, direct);
    await createClient(Echo, byTarget).echo({ text: "a" });
    await createClient(Echo, direct).echo({ text: "b" });
    expect(found.named("connection.opened")).toEqual([
      { side: "client", protocol: "weft", peer: address, peerService: Echo.typeName },
    ]);
    // a static address says nothing of what it serves
    expect(byAddress.named("connection.opened")).toEqual([
      { side: "client", protocol: "weft", peer: address },
    ]);
    await byTarget.close();
    expect(found.named("connection.closed")[0]).toMatchObject({ peerService: Echo.typeName });
    await registry.close();
  });

  it("reports connections, goaway and shutdown progress on both sides", async () => {
    const serverSide = recorder();
    const clientSide = recorder();
    const release = deferred<void>();
    const { server, address } = await startServer(
      (s) =>
        s.register(Echo, {
          ...echoHandlers,
          echo: async (req) => {
            await release.promise;
            return { text: req.text };
          },
        }),
      { telemetry: serverSide },
    );
    const transport = createTcpTransport({ address, telemetry: clientSide });
    transports.push(transport);
    const echo = createClient(Echo, transport);
    const pending = echo.echo({ text: "in flight" });
    await until(() => server.inFlight === 1);

    expect(clientSide.named("connection.opened")).toEqual([
      { side: "client", protocol: "weft", peer: address },
    ]);
    expect(serverSide.named("connection.opened")).toHaveLength(1);
    expect(serverSide.named("connection.opened")[0]).toMatchObject({ side: "server", protocol: "weft" });

    const down = server.shutdown({ timeoutMs: 5000 });
    await until(() => clientSide.named("goaway.received").length === 1);
    release.resolve();
    await expect(pending).resolves.toEqual({ text: "in flight" });
    await down;

    expect(serverSide.named("goaway.sent")).toEqual([
      expect.objectContaining({ side: "server", code: 14, reason: "SHUTTING_DOWN" }),
    ]);
    expect(clientSide.named("goaway.received")).toEqual([
      { side: "client", protocol: "weft", peer: address, code: 14, reason: "SHUTTING_DOWN" },
    ]);
    expect(serverSide.named("shutdown.draining")).toEqual([{ inFlight: 1, connections: 1 }]);
    expect(serverSide.named("shutdown.drained")).toEqual([{ inFlight: 0, cancelled: 0 }]);
    expect(serverSide.named("shutdown.closed")).toHaveLength(1);
    expect(serverSide.named("shutdown.closed")[0]!.durationMs).toBeGreaterThanOrEqual(0);
    await until(() => clientSide.named("connection.closed").length === 1);
    expect(serverSide.named("connection.closed")).toEqual([
      expect.objectContaining({ side: "server", reason: "CONNECTION_CLOSED" }),
    ]);
    // shutdown's events come in order, after the goaway
    const order = serverSide.events
      .map((e) => e.name)
      .filter((n) => n.startsWith("shutdown") || n === "goaway.sent");
    expect(order).toEqual(["goaway.sent", "shutdown.draining", "shutdown.drained", "shutdown.closed"]);
  });

  it("reports a stream sender stalled by flow control", async () => {
    const serverSide = recorder();
    const { server, address } = await startServer(
      (s) =>
        s.register(Echo, {
          ...echoHandlers,
          count: async function* () {
            const pad = "x".repeat(64 * 1024);
            for (let i = 0; i < 64; i++) yield { i, pad };
          },
        }),
      { telemetry: serverSide },
    );
    servers.push(server);
    const transport = createTcpTransport({ address });
    transports.push(transport);
    const stream = createClient(Echo, transport).count({ n: 64 })[Symbol.asyncIterator]();
    await stream.next(); // the reader takes one message, then stops: the window (1 MiB) runs out
    await until(() => serverSide.named("flow.stalled").length > 0);
    expect(serverSide.named("flow.stalled")[0]).toMatchObject({
      side: "server",
      protocol: "weft",
      waitingFor: "credit",
    });
    await stream.return?.();
  });

  it("a receiver that throws breaks neither calls nor shutdown", async () => {
    const throwing: Telemetry = {
      event() {
        throw new Error("receiver bug");
      },
    };
    const { server, address } = await startServer((s) => s.register(Echo, echoHandlers), {
      telemetry: throwing,
    });
    const transport = createTcpTransport({ address, telemetry: throwing });
    transports.push(transport);
    await expect(createClient(Echo, transport).echo({ text: "hi" })).resolves.toEqual({ text: "hi" });
    await expect(server.shutdown({ timeoutMs: 1000 })).resolves.toEqual({ cancelled: 0 });
  });

  it("rejects a telemetry option without an event method, naming it", () => {
    expect(() => createTcpTransport({ address: "127.0.0.1:1", telemetry: {} as Telemetry })).toThrow(
      /invalid option "telemetry"/,
    );
  });

  it("calls carry their protocol and peer: the server's at arrival, the client's once sent", async () => {
    const seen: Array<Pick<Call, "side" | "protocol" | "peer">> = [];
    const look: Interceptor = (next) => async (call) => {
      const before = { side: call.side, protocol: call.protocol, peer: call.peer };
      const result = await next(call);
      seen.push(before, { side: call.side, protocol: call.protocol, peer: call.peer });
      return result;
    };
    const { server, address } = await startServer((s) => s.register(Echo, echoHandlers), {
      interceptors: [look],
    });
    servers.push(server);
    const transport = createTcpTransport({ address });
    transports.push(transport);
    await createClient(Echo, transport, { interceptors: [look] }).echo({ text: "hi" });
    const [serverBefore, serverAfter, clientBefore, clientAfter] = seen;
    expect(serverBefore).toEqual({
      side: "server",
      protocol: "weft",
      peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
    expect(serverAfter).toEqual(serverBefore);
    expect(clientBefore).toEqual({ side: "client", protocol: undefined, peer: undefined });
    expect(clientAfter).toEqual({ side: "client", protocol: "weft", peer: address });
  });
});
