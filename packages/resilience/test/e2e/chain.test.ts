/**
 * Retries and error propagation down a chain of real servers over TCP: client → A → B → C.
 */
import { Code, isDownstreamError, WeftError } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { retryBudget } from "../../src/budget.ts";
import { RETRIED_KEY, retry } from "../../src/retry.ts";
import { type Chain, startChain } from "../hops.ts";

const chains: Chain[] = [];
afterEach(async () => {
  await Promise.all(chains.splice(0).map((c) => c.close()));
});

const backoff = { initialDelayMs: 1, maxDelayMs: 4 };

/** C's failure: internals in its metadata and details that must not leak up the chain by default. */
function failure(code: Code): WeftError {
  return new WeftError(code, "inventory store unreachable", {
    reason: "STORE_DOWN",
    metadata: { "x-store-host": "db-7.internal" },
    details: [{ type: "test.DebugInfo", value: { query: "select * from stock" } }],
  });
}

describe("a chain A → B → C where C fails", () => {
  it("C receives at most maxAttempts calls per original request, with retries on every hop, within the budget", async () => {
    const perRequest = new Map<number, number>();
    const budgets: ReturnType<typeof retryBudget>[] = [];
    const chain = await startChain({
      names: ["A", "B", "C"],
      last: (request) => {
        perRequest.set(request.n, (perRequest.get(request.n) ?? 0) + 1);
        throw failure(Code.UNAVAILABLE);
      },
      interceptors: () => {
        const budget = retryBudget({ ratio: 0.1, minRetriesPerSecond: 0.5, windowMs: 10_000 });
        budgets.push(budget);
        return [retry({ maxAttempts: 3, backoff, budget })];
      },
    });
    chains.push(chain);
    const requests = 20;
    for (let n = 0; n < requests; n++) {
      const error = await chain.client.hop({ n }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: Code.UNAVAILABLE, rawMessage: "inventory store unreachable" });
      expect(isDownstreamError(error)).toBe(true);
    }
    const counts = [...perRequest.values()];
    expect(counts).toHaveLength(requests);
    expect(Math.max(...counts)).toBeLessThanOrEqual(3); // (1 + maxRetries), not (1 + maxRetries)² or ³
    // every retry drew on a budget of 10% of its client's requests plus 0.5/s over 10 s
    const retries = budgets.reduce((sum, b) => sum + b.retries, 0);
    const allowed = budgets.reduce((sum, b) => sum + Math.floor(0.1 * b.requests + 5), 0);
    expect(retries).toBeLessThanOrEqual(allowed);
    expect(counts.reduce((a, b) => a + b, 0) - requests).toBe(retries); // only B→C retried
    expect(budgets.map((b) => b.retries).filter((r) => r > 0)).toHaveLength(1);
  });

  it("a hop that received a retried request neither retries nor lets the hops below retry (errors forwarded whole)", async () => {
    const received: Array<string | undefined> = [];
    const chain = await startChain({
      names: ["A", "B", "C"],
      server: () => ({ errors: "forward" }),
      last: (_request, ctx) => {
        received.push(ctx.requestHeaders.get(RETRIED_KEY));
        throw failure(Code.UNAVAILABLE);
      },
      interceptors: () => [retry({ maxAttempts: 3, backoff })],
    });
    chains.push(chain);
    const error = await chain.client.hop({ n: 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: Code.UNAVAILABLE });
    expect(isDownstreamError(error)).toBe(false);
    // client a1 → A retries B: b1 (B retries C: 3), b2, b3 (marked: 1 each); then a2, a3 (marked all
    // the way down: 1 each). 7 calls, where retrying blindly at each of the three hops makes 27.
    expect(received).toEqual([undefined, "1", "2", "1", "2", "1", "2"]);
  });

  it("relays C's error up the chain with code, reason and message only, marked as downstream", async () => {
    const chain = await startChain({
      names: ["A", "B", "C"],
      last: () => {
        throw failure(Code.FAILED_PRECONDITION);
      },
    });
    chains.push(chain);
    const error = (await chain.client.hop({ n: 1 }).catch((e: unknown) => e)) as WeftError;
    expect(error).toBeInstanceOf(WeftError);
    expect(error.code).toBe(Code.FAILED_PRECONDITION);
    expect(error.rawMessage).toBe("inventory store unreachable");
    expect(error.reason).toBe("STORE_DOWN");
    expect(error.metadata.toJSON()).toEqual({ "weft-downstream": "1" });
    expect(error.details).toEqual([]);
  });

  it('forwards C\'s error whole with errors: "forward"', async () => {
    const chain = await startChain({
      names: ["A", "B", "C"],
      server: () => ({ errors: "forward" }),
      last: () => {
        throw failure(Code.FAILED_PRECONDITION);
      },
    });
    chains.push(chain);
    const error = (await chain.client.hop({ n: 1 }).catch((e: unknown) => e)) as WeftError;
    expect(error.code).toBe(Code.FAILED_PRECONDITION);
    expect(error.reason).toBe("STORE_DOWN");
    expect(error.metadata.get("x-store-host")).toBe("db-7.internal");
    expect(error.metadata.get("weft-downstream")).toBeUndefined();
    expect(error.details).toEqual([{ type: "test.DebugInfo", value: { query: "select * from stock" } }]);
  });

  it("keeps a hop's own errors whole: only errors of the calls it made are relayed", async () => {
    const chain = await startChain({
      names: ["C"],
      last: () => {
        throw failure(Code.FAILED_PRECONDITION);
      },
    });
    chains.push(chain);
    const error = (await chain.client.hop({ n: 1 }).catch((e: unknown) => e)) as WeftError;
    expect(error.metadata.get("x-store-host")).toBe("db-7.internal");
    expect(isDownstreamError(error)).toBe(false);
  });
});
