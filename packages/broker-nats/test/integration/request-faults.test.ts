/**
 * The counted request/reply proof on both NATS brokers through the messenger, with a real fault:
 * 1,000 concurrent requests to two responder processes with random delays (some longer than the
 * timeout), one responder killed with SIGKILL midway; then requests when nobody is left. Every
 * request settles exactly once (its own reply, a timeout, or no responders), no reply reaches
 * another request, and nothing stays pending. On core NATS what the killed responder held times out
 * and a request nobody listens to fails at once; on JetStream the requests it held are redelivered
 * to the other responder and answered.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Code, Reason, SILENT_LOGGER, WeftError } from "@weft/core";
import { createMessenger, destination, type Messenger } from "@weft/messaging";
import { pendingRequests } from "@weft/messaging/internal";
import { killed } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetStreamBroker, natsBroker } from "../../src/index.ts";
import { deleteStreams, ensureNats, rawConnection, SERVERS, unique, until } from "./helpers.ts";

const CHILD = fileURLToPath(new URL("./responder.child.ts", import.meta.url));
const children: ChildProcess[] = [];
const requesters: Messenger[] = [];
const tokens: string[] = [];

beforeAll(ensureNats);
afterAll(async () => {
  await Promise.all(children.map(killed));
  for (const m of requesters) {
    await m.close();
    await m.broker.close();
  }
  const nc = await rawConnection();
  await deleteStreams(nc, tokens);
  await nc.close();
});

type Backend = "nats" | "jetstream";

interface Responder {
  readonly child: ChildProcess;
  readonly got: Set<number>;
  readonly replied: Set<number>;
}

async function startResponder(backend: Backend, name: string): Promise<Responder> {
  const child = fork(CHILD, [SERVERS, backend, name], { stdio: "inherit" });
  children.push(child);
  const r: Responder = { child, got: new Set(), replied: new Set() };
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`responder exited (${code}) before it was ready`)));
    child.on("message", (m: "ready" | { got: number } | { replied: number }) => {
      if (m === "ready") resolve();
      else if ("got" in m) r.got.add(m.got);
      else r.replied.add(m.replied);
    });
  });
  return r;
}

type Outcome = "reply" | "timeout" | "no-responders" | "other";

describe.each<{ backend: Backend; timeoutMs: number }>([
  { backend: "nats", timeoutMs: 1_500 },
  // the responders' ackWaitMs is 1 s: a request the killed one held is answered by the other in time
  { backend: "jetstream", timeoutMs: 5_000 },
])("$backend request/reply under SIGKILL", ({ backend, timeoutMs }) => {
  it("1,000 concurrent requests, a responder killed midway: each settles exactly once, with its own reply or an error", async () => {
    const requester = createMessenger({
      broker: await (backend === "nats" ? natsBroker : jetStreamBroker)({ servers: SERVERS }),
      logger: SILENT_LOGGER,
    });
    requesters.push(requester);
    const t = unique();
    tokens.push(t);
    const name = `${t}.quote`;
    const to = destination<{ n: number; delayMs: number }>(name);
    const a = await startResponder(backend, name);
    const b = await startResponder(backend, name);
    const total = 1_000;
    const settled = new Map<number, Outcome[]>();
    const wrong: number[] = [];
    let replies = 0;
    const settle = (n: number, outcome: Outcome) => settled.set(n, [...(settled.get(n) ?? []), outcome]);
    const request = (n: number, delayMs: number, ms = timeoutMs) =>
      requester
        .request<{ n: number; delayMs: number }, { n: number }>(to, { n, delayMs }, { timeoutMs: ms })
        .then(
          (reply) => {
            if (reply.n !== n) wrong.push(n);
            replies++;
            settle(n, "reply");
          },
          (error: unknown) => {
            const kind =
              error instanceof WeftError && error.code === Code.DEADLINE_EXCEEDED
                ? "timeout"
                : error instanceof WeftError && error.reason === Reason.NO_RESPONDERS
                  ? "no-responders"
                  : "other";
            settle(n, kind);
          },
        );
    // 5% of the responders take longer than the timeout: their replies come late and must be dropped
    const slow = new Set<number>();
    const all = Array.from({ length: total }, (_, n) => {
      if (Math.random() < 0.05) slow.add(n);
      return request(n, slow.has(n) ? timeoutMs + 1_000 : Math.random() * 100);
    });
    await until("a third answered", () => replies >= total / 3);
    await killed(a.child);
    const heldByA = [...a.got].filter((n) => !a.replied.has(n));
    await Promise.all(all);
    // the late replies of b have all been sent (and dropped by the requester) before it goes too
    await until("b's late replies sent", () => [...b.got].every((n) => b.replied.has(n)), 15_000);
    await killed(b.child);
    const after = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const start = performance.now();
        await request(total + i, 0, 1_000);
        return performance.now() - start;
      }),
    );

    const outcomes = [...settled.values()];
    const count = (o: Outcome) => outcomes.flat().filter((x) => x === o).length;
    expect(settled.size).toBe(total + 100);
    expect(outcomes.every((o) => o.length === 1)).toBe(true); // exactly once
    expect(wrong).toEqual([]); // no reply reached another request
    expect(count("other")).toBe(0);
    expect(heldByA.length).toBeGreaterThan(0);
    for (const [n, [o]] of settled) {
      if (n >= total) continue;
      if (slow.has(n)) expect(o, `slow request ${n}`).toBe("timeout");
      else if (backend === "jetstream") expect(o, `request ${n}`).toBe("reply");
      // core NATS: what the killed one held or had queued timed out, what b answered was answered
      // (a wrote `replied` before replying, so one of its last may have died with it)
      else if (b.replied.has(n)) expect(o, `request ${n}`).toBe("reply");
      else if (!a.replied.has(n)) expect(o, `request ${n}`).toBe("timeout");
    }
    const nobody = backend === "nats" ? "no-responders" : "timeout";
    for (let i = 0; i < 100; i++) expect(settled.get(total + i)).toEqual([nobody]);
    if (backend === "nats") expect(Math.max(...after)).toBeLessThan(1_000); // NATS says so at once
    expect(pendingRequests(requester)).toBe(0);
    console.info(
      `${backend} request proof: ${total} concurrent requests (${slow.size} slower than the timeout), a ` +
        `responder killed with ${heldByA.length} in its handlers: ${count("reply")} replies, ` +
        `${count("timeout") - 100 * Number(backend === "jetstream")} timeouts; then 100 with nobody left: ` +
        `${nobody} in ≤ ${Math.ceil(Math.max(...after))} ms; 0 settled twice, 0 crossed, 0 pending`,
    );
  });
});
