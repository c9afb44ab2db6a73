/*
 * 1,000 concurrent asynchronous requests over RabbitMQ, answered by two responder processes
 * (responder.child.ts) with random delays, one of them killed with SIGKILL midway: every request
 * resolves exactly once with its own reply (the killed responder's unacknowledged requests are
 * redelivered to the other), none is left pending, and nothing leaks at the broker.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Logger } from "@weft/core";
import { type Broker, createMessenger, destination } from "@weft/messaging";
import { pendingRequests } from "@weft/messaging/internal";
import { killed } from "@weft/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rabbitBroker } from "../../src/index.ts";
import { ensureRabbit, queuesOf, RABBIT_URL, rawClient, unique, until } from "../rabbit.ts";

const script = fileURLToPath(new URL("./responder.child.ts", import.meta.url));
const exchange = unique("weft-requests");
const children: ChildProcess[] = [];
let broker: Broker;

beforeAll(async () => {
  ensureRabbit();
  broker = await rabbitBroker({ url: RABBIT_URL, exchange });
});
afterAll(async () => {
  for (const child of children) await killed(child);
  await broker.close();
  const raw = await rawClient();
  await raw.cleanup(exchange);
  await raw.close();
});

async function responder(name: string) {
  const child = fork(script, [exchange, name, "40"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  children.push(child);
  const state = { answered: 0 };
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`responder exited (${code}) before it was ready`)));
    child.on("message", (m: { ready?: boolean; answered?: number }) => {
      if (m.ready === true) resolve();
      if (m.answered !== undefined) state.answered = m.answered;
    });
  });
  return { child, state };
}

it("1,000 concurrent requests, a responder killed midway: each resolves exactly once, with its own reply", async () => {
  const name = unique("rpc.quote").replace("-", ".");
  const to = destination<{ n: number }>(name);
  const [first] = await Promise.all([responder(name), responder(name)]);
  // duplicates of a reply (the killed responder answered, but died before its ack) are dropped, and counted here
  let droppedReplies = 0;
  const count = (_: unknown, message?: string) => {
    if (message?.startsWith("reply without a waiting request")) droppedReplies++;
  };
  const logger: Logger = { debug: count, info: count, warn: count, error: count, child: () => logger };
  const requester = createMessenger({ broker, logger });
  const total = 1_000;
  const outcomes = new Map<number, string[]>();
  const settle = (n: number, outcome: string) => outcomes.set(n, [...(outcomes.get(n) ?? []), outcome]);
  const requests = Array.from({ length: total }, (_, n) =>
    requester.request<{ n: number }, { n: number }>(to, { n }, { timeoutMs: 30_000 }).then(
      (reply) => settle(n, reply.n === n ? "reply" : `reply to ${reply.n}`),
      (err: unknown) => settle(n, `error ${(err as Error).message}`),
    ),
  );
  await until(() => outcomes.size >= 300, 30_000, "300 replies before the kill");
  first!.child.kill("SIGKILL");
  await killed(first!.child);
  const answeredByKilled = first!.state.answered;
  await Promise.all(requests);
  expect(outcomes.size).toBe(total);
  const kinds = new Map<string, number>();
  for (const list of outcomes.values()) {
    expect(list.length).toBe(1);
    kinds.set(list[0]!, (kinds.get(list[0]!) ?? 0) + 1);
  }
  expect(Object.fromEntries(kinds)).toEqual({ reply: total });
  expect(answeredByKilled).toBeGreaterThan(0);
  expect(answeredByKilled).toBeLessThan(total);
  expect(pendingRequests(requester)).toBe(0);
  // at most what the killed responder held unacknowledged (its maxInFlight)
  expect(droppedReplies).toBeLessThanOrEqual(64);
  await requester.close({ graceMs: 0 });
  // one durable queue for the responders' group (and its dead-letter queue), no inbox left behind
  expect(queuesOf(exchange).sort()).toEqual([
    `${exchange}/dlq/dlq.responders`,
    `${exchange}/responders/${name}`,
  ]);
  const raw = await rawClient();
  expect((await raw.channel.checkQueue(`${exchange}/responders/${name}`)).consumerCount).toBe(1);
  await raw.close();
});
