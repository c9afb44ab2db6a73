/*
 * The direct broker across real processes on one machine (a local registry in a temporary
 * directory), with a subscriber killed by SIGKILL: what is promised (at-most-once, failover to the
 * members left, every request settled once) is counted.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, codeName, createLocalRegistry, Reason, SILENT_LOGGER, WeftError } from "@weft/core";
import { killed } from "@weft/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMessenger,
  type DirectBroker,
  destination,
  directBroker,
  type Envelope,
  newMessageId,
} from "../../src/index.ts";
import { pendingRequests } from "../../src/internal.ts";

const script = fileURLToPath(new URL("./direct-peer.child.ts", import.meta.url));

interface Child {
  readonly process: ChildProcess;
  /** Ids of the messages it reported taking, in order. */
  readonly taken: string[];
  /** Where its broker listens. */
  readonly address: string;
}

const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => killed(c)));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A registry directory of its own and the parent's broker on it. */
async function setup(): Promise<{ directory: string; broker: DirectBroker }> {
  const directory = mkdtempSync(join(tmpdir(), "weft-direct-"));
  cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
  return { directory, broker: await joined(directory) };
}

/** The parent's broker on the registry in `directory`. */
async function joined(directory: string): Promise<DirectBroker> {
  const registry = createLocalRegistry({ directory, pollIntervalMs: 100 });
  const broker = await directBroker({ registry, acceptTimeoutMs: 2_000 });
  cleanups.push(() => registry.close());
  cleanups.push(() => broker.close());
  return broker;
}

/** The parent's broker with a static list of peers. */
async function listing(peers: readonly string[]): Promise<DirectBroker> {
  const broker = await directBroker({ peers, acceptTimeoutMs: 2_000 });
  cleanups.push(() => broker.close());
  return broker;
}

/** A peer process; with `directory` `undefined` it joins no registry (the parent lists it statically). */
async function spawnPeer(config: {
  directory: string | undefined;
  destination: string;
  group: string;
  replyDelayMs?: number;
}): Promise<Child> {
  const child = fork(script, [JSON.stringify({ replyDelayMs: 0, ...config })], { stdio: "inherit" });
  children.push(child);
  const taken: string[] = [];
  const address = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the peer exited with ${code} before it was ready`)));
    child.on("message", (m: { id?: string; ready?: string }) => {
      if (m.id !== undefined) taken.push(m.id);
      if (m.ready !== undefined) resolve(m.ready);
    });
  });
  return { process: child, taken, address };
}

/** Waits (bounded) for a condition no event announces: what the parent knows of its peers. */
async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function message(destination: string, fields: Partial<Envelope> = {}): Envelope {
  const id = newMessageId();
  return {
    id,
    kind: "command",
    destination,
    publishedAt: Date.now(),
    contentType: "application/json",
    headers: {},
    body: new TextEncoder().encode(JSON.stringify({ id })),
    ...fields,
  };
}

/** Runs `task(i)` for i in [0, count) with `concurrency` at a time. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

describe("direct broker with a subscriber killed (SIGKILL)", () => {
  it.each([
    ["a local registry", true],
    ["a static list", false],
  ])(
    "moves a group's messages to the member left; none is delivered twice (peers from %s)",
    async (_, registry) => {
      const directory = registry ? mkdtempSync(join(tmpdir(), "weft-direct-")) : undefined;
      if (directory !== undefined) cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
      const destination = `jobs.${randomUUID().slice(0, 8)}`;
      const [b, c] = await Promise.all([
        spawnPeer({ directory, destination, group: "workers" }),
        spawnPeer({ directory, destination, group: "workers" }),
      ]);
      const broker =
        directory === undefined ? await listing([b.address, c.address]) : await joined(directory);
      await until(() => broker.subscribersOf(destination).length === 2, "both members at the publisher");

      const total = 1_000;
      const concurrency = 8;
      const resolved: { id: string; afterKill: boolean }[] = [];
      const rejected: WeftError[] = [];
      let killDone = false;
      let kill: Promise<void> | undefined;
      await pool(total, concurrency, async () => {
        const m = message(destination);
        const afterKill = killDone;
        try {
          await broker.publish(m);
          resolved.push({ id: m.id, afterKill });
        } catch (error) {
          if (!(error instanceof WeftError)) throw error;
          rejected.push(error);
        }
        if (resolved.length === 300 && kill === undefined)
          kill = killed(b.process).then(() => {
            killDone = true;
          });
      });
      await kill;

      const afterKill = resolved.filter((r) => r.afterKill);
      await until(() => afterKill.every((r) => c.taken.includes(r.id)), "C's reports of what it took");
      const taken = [...b.taken, ...c.taken];
      // at most once: no message taken twice, in one process or across both
      expect(new Set(taken).size).toBe(taken.length);
      // every publish settled; the ones that failed were on their way to B as it died
      expect(resolved.length + rejected.length).toBe(total);
      expect(rejected.length).toBeLessThanOrEqual(concurrency);
      for (const error of rejected) expect(error.code).toBe(Code.UNAVAILABLE);
      // after the kill everything went to C, and C took every one of them
      expect(afterKill.length).toBeGreaterThan(500);
      // B took what was resolved to it before it died (its last reports may die with it)
      const unreported = resolved.filter((r) => !taken.includes(r.id)).length;
      expect(unreported).toBeLessThanOrEqual(16);
      console.info(
        `direct kill (${_}): ${total} published, ${resolved.length} resolved (${afterKill.length} after the kill), ` +
          `${rejected.length} rejected, B took ${b.taken.length}, C took ${c.taken.length}, ` +
          `${unreported} resolved to B without its report`,
      );
    },
  );

  it("settles each of 1,000 concurrent requests exactly once, with its own reply, while a responder is killed", async () => {
    const { directory, broker } = await setup();
    const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
    cleanups.push(() => messenger.close({ graceMs: 0 }));
    const quotes = destination<{ n: number }>(`quotes.${randomUUID().slice(0, 8)}`);
    const [b] = await Promise.all([
      spawnPeer({ directory, destination: quotes.name, group: "responders", replyDelayMs: 20 }),
      spawnPeer({ directory, destination: quotes.name, group: "responders", replyDelayMs: 20 }),
    ]);
    await until(() => broker.subscribersOf(quotes.name).length === 2, "both responders at the requester");

    const total = 1_000;
    const ends = new Map<string, number>();
    let wrongReply = 0;
    let replies = 0;
    let kill: Promise<void> | undefined;
    await Promise.all(
      Array.from({ length: total }, async (_, n) => {
        let end: string;
        try {
          const reply = await messenger.request<{ n: number }, { n: number }>(
            quotes,
            { n },
            { timeoutMs: 3_000 },
          );
          if (reply.n !== n) wrongReply++;
          end = "reply";
          if (++replies === 300) kill ??= killed(b!.process);
        } catch (error) {
          if (!(error instanceof WeftError)) throw error;
          end = `${codeName(error.code)}/${error.reason}`;
        }
        ends.set(end, (ends.get(end) ?? 0) + 1);
      }),
    );
    await kill;

    // Promise.all counted each request once: every one settled (reply, rejection or timeout), none twice
    expect([...ends.values()].reduce((x, y) => x + y)).toBe(total);
    expect(wrongReply).toBe(0);
    expect(pendingRequests(messenger)).toBe(0);
    expect(ends.get("reply")).toBeGreaterThan(500);
    for (const end of ends.keys())
      expect([
        "reply",
        "UNAVAILABLE/BROKER_UNAVAILABLE",
        "DEADLINE_EXCEEDED/DEADLINE_EXCEEDED",
        "UNAVAILABLE/NO_RESPONDERS",
      ]).toContain(end);
    console.info(
      `direct requests: ${total} requests through the messenger, ${JSON.stringify(Object.fromEntries(ends))}`,
    );
  });

  it("fails fast once the only member is gone: no responders for a request, nothing routed to it", async () => {
    const { directory, broker } = await setup();
    const name = `solo.${randomUUID().slice(0, 8)}`;
    const b = await spawnPeer({ directory, destination: name, group: "solo" });
    await until(() => broker.subscribersOf(name).length === 1, "the member at the publisher");
    await broker.publish(message(name));

    const start = performance.now();
    await killed(b.process);
    // the first publish either finds the peer gone or reaches its dead connection: never hangs
    const first = await broker.publish(message(name)).then(
      () => "resolved",
      (e: unknown) => (e instanceof WeftError ? e.reason : String(e)),
    );
    await until(() => broker.subscribersOf(name).length === 0, "the member's removal", 2_000);
    const detectedMs = performance.now() - start;

    const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
    cleanups.push(() => messenger.close({ graceMs: 0 }));
    const asked = performance.now();
    const error = await messenger
      .request(destination<unknown>(name), {}, { timeoutMs: 5_000 })
      .catch((e: unknown) => e);
    const answeredMs = performance.now() - asked;
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(Code.UNAVAILABLE);
    expect((error as WeftError).reason).toBe(Reason.NO_RESPONDERS);
    expect(answeredMs).toBeLessThan(100);
    console.info(
      `direct fail-fast: first publish after the kill ${first}; member gone at the publisher ${detectedMs.toFixed(0)} ms after SIGKILL; ` +
        `a request then rejected NO_RESPONDERS in ${answeredMs.toFixed(1)} ms`,
    );
  });
});
