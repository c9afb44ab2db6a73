import { Code, ConfigError } from "@weft/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ok, scripted } from "../test/fake.ts";
import { timeout } from "./timeout.ts";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("timeout", () => {
  it("sets the budget per client, per service and per method, the method's first", async () => {
    const { client, sent } = scripted(
      [timeout({ ms: 1_000, perMethod: { "test.v1.Svc": 500, "test.v1.Svc/read": 200 } })],
      async () => ok(1),
    );
    await client.read({ n: 1 });
    await client.write({ n: 1 });
    expect(sent.map((s) => s.deadline! - Date.now())).toEqual([200, 500]);
    const plain = scripted([timeout({ ms: 1_000 })], async () => ok(1));
    await plain.client.write({ n: 1 });
    expect(plain.sent[0]!.deadline! - Date.now()).toBe(1_000);
  });

  it("never extends the call's own deadline: the smaller wins", async () => {
    const { client, sent } = scripted([timeout({ ms: 1_000 })], async () => ok(1));
    await client.write({ n: 1 }, { timeoutMs: 300 });
    await client.write({ n: 1 }, { timeoutMs: 5_000 });
    expect(sent.map((s) => s.deadline! - Date.now())).toEqual([300, 1_000]);
  });

  it("fails a call whose budget is already spent without sending it", async () => {
    const { client, sent } = scripted([timeout({ ms: 1_000 })], async () => ok(1));
    const spent = client.write({ n: 1 }, { timeoutMs: 0 });
    await expect(spent).rejects.toMatchObject({ code: Code.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED" });
    expect(sent).toHaveLength(0);
  });

  it("rejects bad options with a ConfigError naming them", () => {
    expect(() => timeout({ ms: 0 })).toThrow(ConfigError);
    expect(() => timeout({ ms: 10, perMethod: { "a.B": -1 } })).toThrow(/perMethod\["a.B"\]/);
  });
});
