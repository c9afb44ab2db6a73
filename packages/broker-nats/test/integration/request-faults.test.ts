/**
 * The counted request/reply proof on core NATS (`natsBroker`) through the messenger, with a real
 * fault: 1,000 concurrent requests to two responder processes with random delays (some longer than
 * the timeout), one responder killed with SIGKILL midway; then requests when nobody is left. Every
 * request settles exactly once (its own reply, a timeout, or no responders), no reply reaches
 * another request, and nothing stays pending.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Code, Reason, SILENT_LOGGER, WeftError } from "@weft/core";
import { createMessenger, destination, type Messenger } from "@weft/messaging";
import { pendingRequests } from "@weft/messaging/internal";
import { killed } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsBroker } from "../../src/index.ts";
import { ensureNats, SERVERS, unique, until } from "./helpers.ts";

const CHILD = fileURLToPath(new URL("./responder.child.ts", import.meta.url));
const children: ChildProcess[] = [];
let requester: Messenger;

beforeAll(async () => {
  ensureNats();
  requester = createMessenger({ broker: await natsBroker({ servers: SERVERS }), logger: SILENT_LOGGER });
});
afterAll(async () => {
  await Promise.all(children.map(killed));
  await requester.close();
  await requester.broker.close();
});

interface Responder {
  readonly child: ChildProcess;
  readonly got: Set<number>;
  readonly replied: Set<number>;
}

async function startResponder(name: string): Promise<Responder> {
  const child = fork(CHILD, [SERVERS, name], { stdio: "inherit" });
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

describe("natsBroker request/reply under SIGKILL", () => {
  it("1,000 concurrent requests, a responder killed midway: each settles exactly once, with its own reply or an error", async () => {
    const name = `${unique()}.quote`;
    const to = destination<{ n: number; delayMs: number }>(name);
    const a = await startResponder(name);
    const b = await startResponder(name);
    const total = 1_000;
    const timeoutMs = 1_500;
    const settled = new Map<number, Outcome[]>();
    const wrong: number[] = [];
    let replies = 0;
    const settle = (n: number, outcome: Outcome) => settled.set(n, [...(settled.get(n) ?? []), outcome]);
    const request = (n: number, delayMs: number) =>
      requester
        .request<{ n: number; delayMs: number }, { n: number }>(to, { n, delayMs }, { timeoutMs })
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
      return request(n, slow.has(n) ? 2_500 : Math.random() * 100);
    });
    await until("a third answered", () => replies >= total / 3);
    await killed(a.child);
    const heldByA = [...a.got].filter((n) => !a.replied.has(n));
    await Promise.all(all);
    // the late replies of b have all been sent (and dropped by the requester) before it goes too
    await until("b's late replies sent", () => [...b.got].every((n) => b.replied.has(n)), 10_000);
    await killed(b.child);
    const after = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const start = performance.now();
        await request(total + i, 0);
        return performance.now() - start;
      }),
    );

    const outcomes = [...settled.values()];
    expect(settled.size).toBe(total + 100);
    expect(outcomes.every((o) => o.length === 1)).toBe(true); // exactly once
    expect(wrong).toEqual([]); // no reply reached another request
    expect(outcomes.flat().filter((o) => o === "other")).toEqual([]);
    const count = (o: Outcome) => outcomes.flat().filter((x) => x === o).length;
    // what a held when it died timed out; nothing else did but the slow ones
    for (const n of heldByA)
      expect(settled.get(n), `request ${n} held by the killed responder`).toEqual(["timeout"]);
    expect(heldByA.length).toBeGreaterThan(0);
    // with nobody left, NATS says so at once: no request waits for its timeout
    for (let i = 0; i < 100; i++) expect(settled.get(total + i)).toEqual(["no-responders"]);
    expect(Math.max(...after)).toBeLessThan(timeoutMs);
    expect(pendingRequests(requester)).toBe(0);
    console.info(
      `request proof: ${total} concurrent requests (${slow.size} slower than the timeout), a responder ` +
        `killed with ${heldByA.length} in its handlers: ${count("reply")} replies, ${count("timeout")} ` +
        `timeouts (the slow ones and what the killed one held or queued), then 100 with no responders in ` +
        `≤ ${Math.ceil(Math.max(...after))} ms; 0 settled twice, 0 crossed, 0 pending`,
    );
  });
});
