/**
 * A server in a real registry (memory and local) over real TCP: `registerWith` advertises what it
 * listens on, and `shutdown` leaves the registry first: a watching client sees `removed` while the
 * server still serves, calls in flight complete, and only then does the drain refuse calls. A
 * registry that fails to deregister does not hold shutdown up.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createClient,
  createLocalRegistry,
  createMemoryRegistry,
  createTcpTransport,
  type InstanceChange,
  type Registrar,
  type Registry,
  type Transport,
} from "../../src/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, echoHandlers, startServer } from "../fixtures.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function next(changes: AsyncIterator<InstanceChange>): Promise<InstanceChange> {
  const item = await changes.next();
  if (item.done === true) throw new Error("the watch ended");
  return item.value;
}

const backends: [string, () => Registry][] = [
  ["memory", () => createMemoryRegistry()],
  [
    "local",
    () => {
      const directory = mkdtempSync(join(tmpdir(), "weft-registration-"));
      cleanup.push(() => rmSync(directory, { recursive: true, force: true }));
      return createLocalRegistry({ directory });
    },
  ],
];

describe.each(backends)("a server registered in the %s registry", (_name, makeRegistry) => {
  async function setUp(release: Promise<void>) {
    const registry = makeRegistry();
    cleanup.push(() => registry.close());
    const entered = deferred();
    const { server, address } = await startServer((s) =>
      s.register(Echo, {
        ...echoHandlers,
        echo: async (req) => {
          if (req.text === "slow") {
            entered.resolve();
            await release;
          }
          return { text: req.text };
        },
      }),
    );
    cleanup.push(() => void server.shutdown({ timeoutMs: 100, deregisterDelayMs: 0 }));
    const transport: Transport = createTcpTransport({ address });
    cleanup.push(() => transport.close());
    return {
      registry,
      server,
      address,
      client: createClient(Echo, transport),
      entered: () => entered.promise,
    };
  }

  it("advertises the bound Weft address of every registered service, with the options given", async () => {
    const { registry, server, address } = await setUp(Promise.resolve());
    const registration = await server.registerWith(registry, {
      weight: 7,
      zone: "z1",
      labels: { group: "a" },
      env: {},
    });
    const [instance] = await registry.list("test.v1.Echo");
    expect(instance).toEqual(registration.instances[0]);
    expect(instance).toMatchObject({
      addresses: { weft: address },
      weight: 7,
      zone: "z1",
      labels: { group: "a" },
    });
    expect(await registry.services?.()).toEqual(["test.v1.Echo"]);
    await registration.update({ weight: 3, labels: { group: "b" } });
    expect(await registry.list("test.v1.Echo")).toMatchObject([{ weight: 3, labels: { group: "b" } }]);
    await registration.deregister();
    expect(await registry.list("test.v1.Echo")).toEqual([]);
  });

  it("shutdown: the watcher sees removed while calls are still served; in-flight calls complete; then the drain", async () => {
    const release = deferred();
    const { registry, server, client, entered } = await setUp(release.promise);
    await server.registerWith(registry, { env: {} });
    const changes = registry.watch("test.v1.Echo")[Symbol.asyncIterator]();
    expect((await next(changes)).added).toHaveLength(1);
    const states: string[] = [];
    server.onStateChange((s) => states.push(s));

    const inFlight = client.echo({ text: "slow" });
    await entered();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const stopped = server.shutdown({ deregisterDelayMs: 5_000 });
    const change = await next(changes);
    expect(change.removed).toHaveLength(1);
    // the registry says it is gone, and the server still answers
    expect(server.state).toBe("leaving");
    await expect(client.echo({ text: "after removed" })).resolves.toEqual({ text: "after removed" });
    release.resolve();
    await expect(inFlight).resolves.toEqual({ text: "slow" });
    expect(states).toEqual(["leaving"]);
    await vi.advanceTimersByTimeAsync(5_000);
    vi.useRealTimers();
    expect(states[1]).toBe("draining");
    await expect(stopped).resolves.toEqual({ cancelled: 0 });
    expect(states).toEqual(["leaving", "draining", "stopped"]);
  });
});

describe("registerWith", () => {
  it("rejects before listen with a ConfigError naming advertise, and for services not registered", async () => {
    const { createServer } = await import("../../src/index.ts");
    const server = createServer().register(Echo, echoHandlers);
    const registry = createMemoryRegistry();
    await expect(server.registerWith(registry, { env: {} })).rejects.toMatchObject({ option: "advertise" });
    const registration = await server.registerWith(registry, { advertise: { weft: "10.1.2.3:4000" } });
    expect(registration.instances[0]?.addresses).toEqual({ weft: "10.1.2.3:4000" });
    await expect(
      server.registerWith(registry, { services: ["other.v1.S"], advertise: { weft: "h:1" } }),
    ).rejects.toMatchObject({ option: "services" });
    await server.shutdown({ deregisterDelayMs: 0 });
    expect(await registry.list("test.v1.Echo")).toEqual([]);
  });

  it("interface granularity: one record per service", async () => {
    const { server } = await startServer((s) => s.register(Echo, echoHandlers));
    const registry = createMemoryRegistry();
    const registration = await server.registerWith(registry, { granularity: "interface", id: "n1", env: {} });
    expect(registration.instances.map((i) => [i.id, i.services])).toEqual([
      ["n1/test.v1.Echo", ["test.v1.Echo"]],
    ]);
    await server.shutdown({ deregisterDelayMs: 0 });
  });

  it("registers only once ready() passes, polling on a fake clock", async () => {
    const { server } = await startServer((s) => s.register(Echo, echoHandlers));
    const registry = createMemoryRegistry();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    let ready = false;
    let checks = 0;
    const registering = server.registerWith(registry, {
      env: {},
      readyIntervalMs: 100,
      ready: () => {
        checks++;
        return ready;
      },
    });
    await vi.advanceTimersByTimeAsync(250);
    expect(await registry.list("test.v1.Echo")).toEqual([]);
    ready = true;
    await vi.advanceTimersByTimeAsync(100);
    await registering;
    expect(checks).toBe(4);
    expect(await registry.list("test.v1.Echo")).toHaveLength(1);
    const failed = server
      .registerWith(registry, { env: {}, ready: () => false, readyIntervalMs: 100, readyTimeoutMs: 300 })
      .then(undefined, (e: unknown) => e);
    await vi.advanceTimersByTimeAsync(400);
    await expect(failed).resolves.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    vi.useRealTimers();
    await server.shutdown({ deregisterDelayMs: 0 });
  });

  it("a registry that cannot deregister does not hold shutdown up: bounded, reported", async () => {
    const errors: unknown[] = [];
    const { server } = await startServer((s) => s.register(Echo, echoHandlers), {
      onError: (e) => errors.push(e),
    });
    const down: Registrar = {
      register: async (input) => {
        const instance = {
          id: "x",
          weight: 100,
          version: "",
          zone: "",
          labels: {},
          startedAt: 0,
          ...input,
        } as never;
        return { instance, update: async () => {}, deregister: () => new Promise<void>(() => {}) };
      },
    };
    const failing: Registrar = {
      register: async (input) => ({
        instance: input as never,
        update: async () => {},
        deregister: () => Promise.reject(new Error("etcd is down")),
      }),
    };
    await server.registerWith(down, { env: {} });
    await server.registerWith(failing, { env: {} });
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const stopped = server.shutdown({ deregisterTimeoutMs: 2_000, deregisterDelayMs: 0 });
    await vi.advanceTimersByTimeAsync(2_000);
    vi.useRealTimers();
    await expect(stopped).resolves.toEqual({ cancelled: 0 });
    expect(errors).toHaveLength(2);
    expect(errors).toMatchObject([{ reason: "REGISTRY_UNAVAILABLE" }, { reason: "REGISTRY_UNAVAILABLE" }]);
  });
});

describe("registration and shutdown racing", () => {
  it("a registerWith still waiting for its registry when shutdown starts takes its record back", async () => {
    const { server } = await startServer((s) => s.register(Echo, echoHandlers));
    const registry = createMemoryRegistry();
    cleanup.push(() => registry.close());
    const answer = deferred<void>();
    const slow: Registrar = {
      register: async (input, options) => {
        await answer.promise;
        return registry.register(input, options);
      },
    };
    const registering = server.registerWith(slow, { env: {} }).then(undefined, (e: unknown) => e);
    const stopped = server.shutdown({ deregisterDelayMs: 0 });
    answer.resolve();
    expect(await registering).toBeInstanceOf(Error);
    await stopped;
    expect(server.state).toBe("stopped");
    expect(await registry.list("test.v1.Echo")).toEqual([]);
  });

  it("bad shutdown options reject that call only: a later shutdown still works; Infinity waits", async () => {
    const { server } = await startServer((s) => s.register(Echo, echoHandlers));
    await expect(server.shutdown({ deregisterDelayMs: -1 })).rejects.toMatchObject({
      option: "deregisterDelayMs",
    });
    expect(server.state).toBe("serving");
    await expect(server.shutdown({ timeoutMs: Number.POSITIVE_INFINITY })).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
  });

  it("a ready() that never settles ends registerWith at readyTimeoutMs", async () => {
    const { server } = await startServer((s) => s.register(Echo, echoHandlers));
    const registry = createMemoryRegistry();
    cleanup.push(() => registry.close());
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const failed = server
      .registerWith(registry, { env: {}, ready: () => new Promise<boolean>(() => {}), readyTimeoutMs: 300 })
      .then(undefined, (e: unknown) => e);
    await vi.advanceTimersByTimeAsync(400);
    await expect(failed).resolves.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    vi.useRealTimers();
    expect(await registry.list("test.v1.Echo")).toEqual([]);
    await server.shutdown({ deregisterDelayMs: 0 });
  });
});
