/**
 * Dynamic membership over real sockets: Weft servers registered in a local registry (files in a
 * temp directory), a client naming the service by a `local:///` target. Real processes' timing: the
 * client is polled, within a bound, until the answers show the change.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  createClient,
  createLocalRegistry,
  createTcpTransport,
  failfast,
  pinRoute,
  type Registration,
  type Registry,
  type Server,
  type Transport,
} from "../../src/index.ts";
import { Echo, startServer } from "../fixtures.ts";

const root = mkdtempSync(join(tmpdir(), "weft-membership-"));
const servers: Server[] = [];
const transports: Transport[] = [];
const registries: Registry[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(registries.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A Weft server that answers every echo with its name, registered in `registry`. */
async function namedServer(registry: Registry, name: string): Promise<Registration> {
  const { server, address } = await startServer((s) =>
    s.register(Echo, {
      echo: () => ({ text: name }),
      count: async function* () {},
      sum: async () => ({ total: 0, count: 0 }),
      chat: async function* () {},
      notify: () => {},
    }),
  );
  servers.push(server);
  return registry.register({ services: [Echo.typeName], addresses: { weft: address } });
}

/** Calls until the servers answering 12 calls in a row are exactly `expected` (bounded: 10 s). */
async function until(client: { echo(req: { text: string }): Promise<{ text: string }> }, expected: string[]) {
  const stop = Date.now() + 10_000;
  let seen = new Set<string>();
  while (Date.now() < stop) {
    seen = new Set<string>();
    for (let i = 0; i < 12; i++) seen.add((await client.echo({ text: "" })).text);
    if ([...seen].sort().join() === [...expected].sort().join()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect([...seen].sort()).toEqual([...expected].sort());
}

describe("a client following a service in a local registry over TCP", () => {
  it("reaches every registered server, then a new one, and stops calling a deregistered one", async () => {
    const dir = join(root, "tcp");
    const registry = createLocalRegistry({ directory: dir, pollIntervalMs: 100 });
    registries.push(registry);
    await namedServer(registry, "a");
    const b = await namedServer(registry, "b");

    const transport = createTcpTransport({
      target: `local:///${Echo.typeName}?dir=${encodeURIComponent(dir)}`,
    });
    transports.push(transport);
    const client = createClient(Echo, transport);
    await until(client, ["a", "b"]);

    await namedServer(registry, "c");
    await until(client, ["a", "b", "c"]);

    await b.deregister();
    await until(client, ["a", "c"]);
    for (let i = 0; i < 30; i++) expect((await client.echo({ text: "" })).text).not.toBe("b");
  });
});

describe("a transport's cluster policies", () => {
  it("takes routing and a mode beside its target, not only per method", async () => {
    const registry = createLocalRegistry({ directory: mkdtempSync(join(root, "policies-")) });
    registries.push(registry);
    const a = await namedServer(registry, "a");
    await namedServer(registry, "b");
    const transport = createTcpTransport({
      address: [
        a.instance.addresses.weft!,
        (await registry.list(Echo.typeName)).find((i) => i.id !== a.instance.id)!.addresses.weft!,
      ],
      routing: [pinRoute()],
      mode: failfast(),
    });
    transports.push(transport);
    const client = createClient(Echo, transport);
    const pinned = { headers: { "weft-debug-instance": a.instance.addresses.weft! } };
    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) answers.add((await client.echo({ text: "" }, pinned)).text);
    expect([...answers]).toEqual(["a"]);
    await expect(
      client.echo({ text: "" }, { headers: { "weft-debug-instance": "127.0.0.1:1" } }),
    ).rejects.toMatchObject({ reason: "NO_AVAILABLE_NODE" });
  });
});
