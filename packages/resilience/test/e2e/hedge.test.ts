/**
 * Hedging over real TCP: the backup answers first, and the server sees the first attempt cancelled.
 */
import {
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  messageType,
  unary,
} from "@weft/core";
import { expect, it } from "vitest";
import { hedge } from "../../src/hedge.ts";

const Lookup = defineService("test.v1.Lookup", {
  get: unary(messageType<{ key: string }>(), messageType<{ attempt: number }>(), { idempotent: true }),
});

it("the first answer wins and the server sees the other attempt cancelled", async () => {
  let arrivals = 0;
  let cancelled!: () => void;
  const firstCancelled = new Promise<void>((resolve) => {
    cancelled = resolve;
  });
  const server = createServer({ onError: () => {} });
  server.register(Lookup, {
    get: async (_request, ctx) => {
      const attempt = ++arrivals;
      if (attempt === 1) {
        // the slow replica: answers only when told to stop
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        cancelled();
      }
      return { attempt };
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
  try {
    const client = createClient(Lookup, transport, { interceptors: [hedge({ delayMs: 20 })] });
    expect(await client.get({ key: "a" }, { timeoutMs: 5_000 })).toEqual({ attempt: 2 });
    await firstCancelled; // bounded by the test's timeout: the first attempt's signal aborted on the server
    expect(arrivals).toBe(2);
  } finally {
    await transport.close();
    await server.shutdown({ timeoutMs: 1_000 });
  }
});
