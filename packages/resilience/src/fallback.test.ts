import {
  Code,
  ConfigError,
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  messageType,
  Reason,
  type Telemetry,
  unary,
  WeftError,
} from "@weft/core";
import { describe, expect, it } from "vitest";
import { circuitBreaker } from "./breaker/interceptor.ts";
import { consecutiveFailures } from "./breaker/rules.ts";
import { degradable, degradationSwitch, fallback } from "./fallback.ts";

const Items = defineService("test.v1.Items", {
  lookup: unary(messageType<{ id: string }>(), messageType<{ name: string }>()),
  save: unary(messageType<{ id: string }>(), messageType<{ ok: boolean }>()),
});

/** A server whose `lookup` fails with `state.error` when set; `calls` counts the handler's runs. */
function itemsServer(serverInterceptors: Parameters<typeof createServer>[0] = {}) {
  const state = { error: undefined as WeftError | undefined, calls: 0 };
  const server = createServer({ onError: () => {}, ...serverInterceptors });
  server.register(Items, {
    lookup: (req) => {
      state.calls++;
      if (state.error !== undefined) throw state.error;
      return { name: `item ${req.id}` };
    },
    save: () => {
      if (state.error !== undefined) throw state.error;
      return { ok: true };
    },
  });
  return { server, state };
}

describe("fallback", () => {
  it("answers a failed call with its value, and lets successes and business errors through", async () => {
    const { server, state } = itemsServer();
    const client = createClient(Items, createMemoryTransport(server), {
      interceptors: [fallback({ value: { name: "unknown" } })],
    });
    expect(await client.lookup({ id: "1" })).toEqual({ name: "item 1" });
    state.error = new WeftError(Code.UNAVAILABLE, "down");
    expect(await client.lookup({ id: "1" })).toEqual({ name: "unknown" });
    state.error = new WeftError(Code.DEADLINE_EXCEEDED, "slow");
    expect(await client.lookup({ id: "1" })).toEqual({ name: "unknown" });
    state.error = new WeftError(Code.NOT_FOUND, "no item 1");
    await expect(client.lookup({ id: "1" })).rejects.toMatchObject({ code: Code.NOT_FOUND });
  });

  it("answers a call its breaker rejects, with fn(call, error), and says so through telemetry", async () => {
    const { server, state } = itemsServer();
    const events: unknown[] = [];
    const telemetry: Telemetry = { event: (name, attributes) => events.push({ name, ...attributes }) };
    const client = createClient(Items, createMemoryTransport(server), {
      interceptors: [
        fallback({
          methods: ["lookup"],
          fn: (call, error) => ({
            name: `${call.stream ? "" : (call.message as { id: string }).id}: ${(error as WeftError).reason}`,
          }),
          telemetry,
        }),
        circuitBreaker({ rule: consecutiveFailures({ failures: 1 }), openMs: 60_000 }),
      ],
    });
    state.error = new WeftError(Code.UNAVAILABLE, "down", { reason: "DOWN" });
    expect(await client.lookup({ id: "7" })).toEqual({ name: "7: DOWN" });
    expect(await client.lookup({ id: "8" })).toEqual({ name: `8: ${Reason.CIRCUIT_OPEN}` });
    expect(state.calls).toBe(1);
    expect(events).toEqual([
      { name: "fallback.used", method: "/test.v1.Items/lookup", code: Code.UNAVAILABLE, reason: "DOWN" },
      {
        name: "fallback.used",
        method: "/test.v1.Items/lookup",
        code: Code.UNAVAILABLE,
        reason: Reason.CIRCUIT_OPEN,
      },
    ]);
    // save is not in `methods`: its breaker rejects it as it is
    await expect(client.save({ id: "1" })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await expect(client.save({ id: "1" })).rejects.toMatchObject({ reason: Reason.CIRCUIT_OPEN });
  });

  it("answers only the errors `when` accepts", async () => {
    const { server, state } = itemsServer();
    const client = createClient(Items, createMemoryTransport(server), {
      interceptors: [
        fallback({ value: { name: "?" }, when: (e) => e instanceof WeftError && e.code === Code.NOT_FOUND }),
      ],
    });
    state.error = new WeftError(Code.NOT_FOUND, "none");
    expect(await client.lookup({ id: "1" })).toEqual({ name: "?" });
    state.error = new WeftError(Code.UNAVAILABLE, "down");
    await expect(client.lookup({ id: "1" })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    expect(() => fallback({})).toThrow(/value/);
    expect(() => fallback({ value: 1, fn: () => 2 })).toThrow(ConfigError);
    expect(() => fallback({ value: 1, when: 3 as never })).toThrow(/when/);
    expect(() => fallback({ value: 1, methods: "lookup" as never })).toThrow(/methods/);
  });
});

describe("degradable", () => {
  it("serves the simpler handler while its switch is on, and the full one again once off", async () => {
    const degraded = degradable({
      handlers: { lookup: (req: { id: string }) => ({ name: `cached ${req.id}` }) },
    });
    const { server, state } = itemsServer({ interceptors: [degraded] });
    const client = createClient(Items, createMemoryTransport(server));
    expect(await client.lookup({ id: "1" })).toEqual({ name: "item 1" });
    degraded.switch.on();
    expect(degraded.switch.isOn).toBe(true);
    expect(await client.lookup({ id: "2" })).toEqual({ name: "cached 2" });
    expect(await client.save({ id: "2" })).toEqual({ ok: true }); // not degraded
    expect(state.calls).toBe(1);
    degraded.switch.off();
    expect(await client.lookup({ id: "3" })).toEqual({ name: "item 3" });
    expect(state.calls).toBe(2);
  });

  it("follows a shared switch, keyed by wire path too", async () => {
    const shared = degradationSwitch();
    const degraded = degradable({
      switch: shared,
      handlers: { "/test.v1.Items/save": () => ({ ok: false }) },
    });
    const { server } = itemsServer({ interceptors: [degraded] });
    const client = createClient(Items, createMemoryTransport(server));
    shared.on();
    expect(await client.save({ id: "1" })).toEqual({ ok: false });
    expect(degraded.switch).toBe(shared);
  });

  it("rejects bad handlers with a ConfigError naming them", () => {
    expect(() => degradable({} as never)).toThrow(/handlers/);
    expect(() => degradable({ handlers: { lookup: 1 as never } })).toThrow(/handlers.lookup/);
  });
});
