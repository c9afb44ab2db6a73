import { afterEach, describe, expect, it, vi } from "vitest";
import { createMemoryRegistry } from "./memory-registry.ts";
import { abandonRegistration } from "./probe.ts";

const SERVICE = "catalog.v1.Catalog";

function instance(id: string) {
  return { id, services: [SERVICE], addresses: { weft: "127.0.0.1:4000" } };
}

/** The ids the registry lists for the service. */
async function ids(registry: ReturnType<typeof createMemoryRegistry>): Promise<string[]> {
  return (await registry.list(SERVICE)).map((i) => i.id);
}

describe("memory registry: an abandoned registration", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("disappears once its TTL has run out, not before", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const registry = createMemoryRegistry();
    const abandoned = await registry.register(instance("a"), { ttlMs: 2_000 });
    await registry.register(instance("b"), { ttlMs: 2_000 });
    abandonRegistration(abandoned);
    vi.advanceTimersByTime(1_999);
    expect(await ids(registry)).toEqual(["a", "b"]);
    vi.advanceTimersByTime(1);
    expect(await ids(registry)).toEqual(["b"]);
    await registry.close();
  });

  it("waits out a TTL beyond setTimeout's 24.8-day limit", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const month = 30 * 24 * 3600_000;
    const registry = createMemoryRegistry();
    abandonRegistration(await registry.register(instance("a"), { ttlMs: month }));
    vi.advanceTimersByTime(1_000);
    expect(await ids(registry)).toEqual(["a"]);
    vi.advanceTimersByTime(month - 1_000);
    expect(await ids(registry)).toEqual([]);
  });

  it("deregistered before the TTL runs out: a registration of the same id made since stays", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const registry = createMemoryRegistry();
    const abandoned = await registry.register(instance("a"), { ttlMs: 2_000 });
    abandonRegistration(abandoned);
    await abandoned.deregister();
    await registry.register(instance("a"), { ttlMs: 2_000 });
    vi.advanceTimersByTime(2_000);
    expect(await ids(registry)).toEqual(["a"]);
    expect(vi.getTimerCount()).toBe(0); // the cancelled expiry armed nothing again
    await registry.close();
  });
});
