/**
 * `timeout` as a server interceptor over real TCP: it shortens the deadline of the call being
 * handled (the handler, its signal and its outgoing calls follow), and never extends it.
 */
import { Code, type HandlerContext } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { timeout } from "../../src/timeout.ts";
import { type Chain, startChain } from "../hops.ts";

const chains: Chain[] = [];
afterEach(async () => {
  await Promise.all(chains.splice(0).map((c) => c.close()));
});

describe("a server's timeout interceptor", () => {
  it("shortens the handled call's deadline: the handler, its outgoing calls and its signal follow", async () => {
    const seen: Array<{ remaining: number | undefined; aborted: Promise<number> }> = [];
    const chain = await startChain({
      names: ["B", "C"],
      server: (name) => (name === "B" ? { interceptors: [timeout({ ms: 200 })] } : {}),
      last: (_request, ctx: HandlerContext) => {
        const start = Date.now();
        const aborted = new Promise<number>((resolve) =>
          ctx.signal.addEventListener("abort", () => resolve(Date.now() - start)),
        );
        seen.push({ remaining: ctx.timeRemaining(), aborted });
        return aborted.then(() => ({ path: ["C"] }));
      },
    });
    chains.push(chain);
    const started = Date.now();
    const error = await chain.client.hop({ n: 1 }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeLessThan(2_000);
    // only B has the interceptor: C's budget is what B's outgoing call inherited from B's shortened one
    expect(seen).toHaveLength(1);
    expect(seen[0]!.remaining).toBeLessThanOrEqual(200);
    expect(await seen[0]!.aborted).toBeLessThan(1_000);
  });

  it("never extends the deadline the call arrived with", async () => {
    const remaining: Array<number | undefined> = [];
    const chain = await startChain({
      names: ["C"],
      server: () => ({ interceptors: [timeout({ ms: 60_000 })] }),
      last: (_request, ctx) => {
        remaining.push(ctx.timeRemaining());
        return { path: ["C"] };
      },
    });
    chains.push(chain);
    await chain.client.hop({ n: 1 }, { timeoutMs: 500 });
    expect(remaining[0]).toBeLessThanOrEqual(500);
    await chain.client.hop({ n: 2 });
    expect(remaining[1]).toBeGreaterThan(59_000); // no deadline on arrival: the interceptor's own
  });
});
