import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { type Client, Code, createClient, createTcpTransport, SILENT_LOGGER, WeftError } from "@weft/core";
import {
  type Broker,
  createMessenger,
  DEAD_LETTER_HEADER,
  type Destination,
  destination,
  type Messenger,
  outcomeError,
  outcomeHeaders,
  type ReceivedMessage,
  type WorkerOptions,
  type WorkHandler,
} from "@weft/messaging";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Done,
  double,
  type Job,
  Reservations,
  type Step,
  startPatternService,
  startRestartService,
} from "./pattern-service.ts";
import { killed } from "./processes.ts";
import { until as waitUntil } from "./until.ts";

export interface AsyncPatternsOptions {
  /** The longest wait for something that must happen, in ms. Default 10 s. */
  readonly waitMs?: number;
  /** Requests of each pattern in flight across the graceful restart. Default 40. */
  readonly requests?: number;
  /**
   * The broker keeps a group's messages while none of its consumers is there (memory within its
   * process, the persistent backends): the restart test then also asserts that work accepted before
   * the restart and not started was done by the restarted server. Default false.
   */
  readonly queuesWhileAway?: boolean;
  /**
   * Also run the restart test with the server in a child process (`pattern-server.ts`), shut down by
   * SIGTERM: `brokerModule` is a module (path or file URL) whose default export opens a broker
   * connection in that process (`() => Promise<Broker>`), configured by `env`.
   */
  readonly process?: { readonly brokerModule: string; readonly env?: Readonly<Record<string, string>> };
  /**
   * The restarted workers' `maxInFlight`. Default 4, so most work waits at the broker at the restart.
   * A backend that drops what waits for a slot when a subscription stops (core NATS, at-most-once)
   * needs it above what a worker may be pushed, so that everything it received is drained.
   */
  readonly workerMaxInFlight?: number;
  /**
   * Called after each test with the destinations it used (each test's own: a queue, an outcome
   * destination, the workers' dead letters), for a backend that stores them to delete them.
   */
  readonly cleanUp?: (destinations: readonly string[]) => Promise<void>;
}

type Factory = () => Promise<Broker>;

/** A server of the pattern service, started; `stop()` shuts it down gracefully and says how much work it did. */
interface Launched {
  readonly port: number;
  stop(): Promise<number>;
}

/** One outcome event as an instance of the requester's group received it. */
interface Seen {
  readonly instance: number;
  readonly correlationId: string | undefined;
  readonly body: Done | null;
  readonly error: WeftError | undefined;
}

/**
 * Registers the suite of the two async patterns (`workQueue`) on a `Broker` under `name`: RPC then
 * event (the acknowledgement at once, the outcome as an event to any instance of the requester's
 * group) and RPC stream ack (the acknowledgement, then the outcome, on one server stream), their
 * failures, and a counted graceful restart of the server with both in flight. The server is a Weft
 * server on loopback TCP with its own broker connection; `factory` makes each connection, as for
 * `brokerConformance`. Destinations and groups have random suffixes.
 */
export function asyncPatternsConformance(
  name: string,
  factory: Factory,
  options: AsyncPatternsOptions = {},
): void {
  const waitMs = options.waitMs ?? 10_000;
  const workerMaxInFlight = options.workerMaxInFlight ?? 4;
  const requests = options.requests ?? 40;

  describe(`${name}: async patterns (RPC then event, RPC stream ack)`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    const used: string[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      const destinations = used.splice(0);
      if (destinations.length > 0) await options.cleanUp?.(destinations);
    });
    const until = (check: () => boolean, what: string): Promise<void> => waitUntil(check, what, waitMs);

    async function messenger(): Promise<Messenger> {
      const broker = await factory();
      const m = createMessenger({ broker, logger: SILENT_LOGGER });
      cleanups.push(async () => {
        await m.close({ graceMs: 0 });
        await broker.close();
      });
      return m;
    }

    /** The pattern service on a broker connection of its own, in this process, stopped after the test. */
    async function startService(
      queue: Destination<Job>,
      group: string,
      work: WorkHandler<Job, Done>,
      worker: Partial<WorkerOptions> = {},
    ) {
      const service = await startPatternService(await factory(), queue.name, group, work, worker, waitMs);
      cleanups.push(() => service.stop());
      return service;
    }

    /** Starts the restart tests' service in this process. */
    async function inProcess(queue: Destination<Job>, group: string): Promise<Launched> {
      const service = await startRestartService(
        await factory(),
        queue.name,
        group,
        workerMaxInFlight,
        waitMs,
      );
      cleanups.push(() => service.stop().then(() => {}));
      return service;
    }

    /** Starts the restart tests' service in a child process (`pattern-server.ts`). */
    async function inChild(queue: Destination<Job>, group: string): Promise<Launched> {
      const spec = options.process!;
      const script = fileURLToPath(new URL("./pattern-server.ts", import.meta.url));
      const child = spawn(
        process.execPath,
        [script, spec.brokerModule, queue.name, group, String(workerMaxInFlight)],
        {
          stdio: ["ignore", "pipe", "inherit"],
          env: { ...process.env, ...spec.env },
        },
      );
      cleanups.push(() => killed(child));
      let out = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => {
        out += chunk;
      });
      const exited = once(child, "exit") as Promise<[number | null]>;
      await until(
        () => /LISTENING \d+\n/.test(out) || child.exitCode !== null,
        "the server process to listen",
      );
      const port = Number(/LISTENING (\d+)\n/.exec(out)?.[1]);
      if (!(port > 0)) throw new Error(`the server process exited (${child.exitCode}) before it listened`);
      return {
        port,
        stop: async () => {
          child.kill("SIGTERM");
          const [code] = await exited;
          expect(code, "the server process's exit code after SIGTERM").toBe(0);
          return Number(/WORKED (\d+)\n/.exec(out)?.[1] ?? Number.NaN);
        },
      };
    }

    function clientOf(port: number): Client<typeof Reservations> {
      const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
      cleanups.push(() => transport.close());
      return createClient(Reservations, transport, { timeoutMs: waitMs });
    }

    /** Two instances of the requester's group subscribed to its outcome destination. */
    async function requesters(outcomes: Destination<Done>, seen: Seen[]): Promise<void> {
      const group = `shop-${randomUUID().slice(0, 8)}`;
      for (const instance of [1, 2]) {
        const m = await messenger();
        await m.subscribe(
          outcomes,
          (msg: ReceivedMessage<Done>) =>
            void seen.push({
              instance,
              correlationId: msg.correlationId,
              body: msg.body,
              error: outcomeError(msg),
            }),
          { group },
        );
      }
    }

    function names() {
      const suffix = randomUUID().slice(0, 8);
      const named = {
        queue: destination<Job>(`patterns.reserve.${suffix}`, { kind: "command" }),
        outcomes: destination<Done>(`patterns.reserved.${suffix}`),
        workers: `workers-${suffix}`,
      };
      used.push(named.queue.name, named.outcomes.name, `dlq.${named.workers}`);
      return named;
    }

    /** A service whose work waits until the test calls `open()`; `worked()` counts work done. */
    async function gatedService(queue: Destination<Job>, workers: string) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => {
        open = resolve;
      });
      let done = 0;
      const service = await startService(
        queue,
        workers,
        async (m) => {
          await opened;
          done++;
          return double(m.body);
        },
        { maxInFlight: 32 },
      );
      return { client: clientOf(service.port), open, worked: () => done };
    }

    it("RPC then event: acknowledged before the work is done; each outcome reaches one instance of the requester's group, with the request's correlation id", async () => {
      const { queue, outcomes, workers } = names();
      const seen: Seen[] = [];
      await requesters(outcomes, seen);
      const { client, open, worked } = await gatedService(queue, workers);
      const n = 20;
      const acks = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          client.reserve({ n: i }, { headers: outcomeHeaders(outcomes, { correlationId: `c-${i}` }) }),
        ),
      );
      // every acknowledgement came back while no work was done yet
      expect(worked()).toBe(0);
      expect(seen).toHaveLength(0);
      expect(acks.map((a) => a.correlationId)).toEqual(Array.from({ length: n }, (_, i) => `c-${i}`));
      expect(new Set(acks.map((a) => a.id)).size).toBe(n);
      open();
      await until(() => seen.length === n, `${n} outcome events`);
      const byId = new Map(seen.map((s) => [s.correlationId, s]));
      expect(byId.size).toBe(n);
      for (let i = 0; i < n; i++) expect(byId.get(`c-${i}`)?.body).toEqual({ n: i, doubled: 2 * i });
      expect(seen.every((s) => s.error === undefined && (s.instance === 1 || s.instance === 2))).toBe(true);
    });

    it("RPC then event: without a chosen correlation id the outcome carries the command's id", async () => {
      const { queue, outcomes, workers } = names();
      const seen: Seen[] = [];
      await requesters(outcomes, seen);
      const service = await startService(queue, workers, (m) => double(m.body));
      const ack = await clientOf(service.port).reserve({ n: 4 }, { headers: outcomeHeaders(outcomes) });
      expect(ack.correlationId).toBe(ack.id);
      await until(() => seen.length === 1, "the outcome event");
      expect(seen[0]!.correlationId).toBe(ack.id);
      expect(seen[0]!.body).toEqual({ n: 4, doubled: 8 });
    });

    it("RPC stream ack: the first message is the acknowledgement, sent before the work is done; the second the outcome", async () => {
      const { queue, workers } = names();
      const { client, open, worked } = await gatedService(queue, workers);
      const n = 10;
      const streams = Array.from({ length: n }, (_, i) =>
        client.reserveStream({ n: i })[Symbol.asyncIterator](),
      );
      const firsts = await Promise.all(streams.map((s) => s.next()));
      expect(worked()).toBe(0);
      const ids = firsts.map((r) => (r.value as { accepted: string }).accepted);
      expect(ids.every((id) => typeof id === "string" && id !== "")).toBe(true);
      expect(new Set(ids).size).toBe(n);
      open();
      const seconds = await Promise.all(streams.map((s) => s.next()));
      expect(seconds.map((r) => r.value)).toEqual(
        Array.from({ length: n }, (_, i) => ({ outcome: { n: i, doubled: 2 * i } })),
      );
      const ends = await Promise.all(streams.map((s) => s.next()));
      expect(ends.every((r) => r.done === true)).toBe(true);
      expect(worked()).toBe(n);
    });

    it("failure: the last attempt's error is the outcome (an error event; the stream's error) and the command is dead-lettered", async () => {
      const { queue, outcomes, workers } = names();
      const seen: Seen[] = [];
      await requesters(outcomes, seen);
      const letters: ReceivedMessage<Job>[] = [];
      const m = await messenger();
      await m.subscribe(destination<Job>(`dlq.${workers}`), (msg) => void letters.push(msg), {
        group: `dlq-${workers}`,
      });
      let attempts = 0;
      const service = await startService(
        queue,
        workers,
        (msg) => {
          attempts++;
          if (msg.body.fail === true)
            throw new WeftError(Code.FAILED_PRECONDITION, "out of stock", { reason: "OUT_OF_STOCK" });
          return double(msg.body);
        },
        { maxDeliveries: 2 },
      );
      const client = clientOf(service.port);
      await client.reserve(
        { n: 1, fail: true },
        { headers: outcomeHeaders(outcomes, { correlationId: "bad" }) },
      );
      await until(() => seen.length === 1, "the error outcome event");
      expect(seen[0]!.correlationId).toBe("bad");
      expect(seen[0]!.body).toBeNull();
      expect(seen[0]!.error?.code).toBe(Code.FAILED_PRECONDITION);
      expect(seen[0]!.error?.reason).toBe("OUT_OF_STOCK");

      const stream = client.reserveStream({ n: 2, fail: true })[Symbol.asyncIterator]();
      expect(((await stream.next()).value as { accepted: string }).accepted).not.toBe("");
      const error = await stream.next().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeftError);
      expect((error as WeftError).reason).toBe("OUT_OF_STOCK");

      await until(() => letters.length === 2, "both commands dead-lettered");
      expect(attempts).toBe(4);
      expect(letters.map((l) => l.headers.get(DEAD_LETTER_HEADER.attempts))).toEqual(["2", "2"]);
      expect(seen).toHaveLength(1);
    });

    it("RPC then event without an outcome destination: the RPC fails with NO_OUTCOME_DESTINATION, nothing is published", async () => {
      const { queue, workers } = names();
      let worked = 0;
      const service = await startService(queue, workers, (m) => {
        worked++;
        return double(m.body);
      });
      const client = clientOf(service.port);
      const error = await client.reserve({ n: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WeftError);
      expect((error as WeftError).code).toBe(Code.INVALID_ARGUMENT);
      expect((error as WeftError).reason).toBe("NO_OUTCOME_DESTINATION");
      // a request that does name one goes through after it, and is the only work done
      const seen: Seen[] = [];
      const { outcomes } = names();
      await requesters(outcomes, seen);
      await client.reserve({ n: 2 }, { headers: outcomeHeaders(outcomes) });
      await until(() => seen.length === 1, "the outcome");
      expect(worked).toBe(1);
    });

    /**
     * The counted restart: `requests` streams acknowledged, then `requests` event requests queued
     * behind them, the server shut down gracefully and started again, then more requests to it.
     */
    async function restartRun(launch: (queue: Destination<Job>, group: string) => Promise<Launched>) {
      const { queue, outcomes, workers } = names();
      const seen: Seen[] = [];
      await requesters(outcomes, seen);
      const first = await launch(queue, workers);
      const client = clientOf(first.port);

      // streams first, each held until its first message (the acknowledgement) arrived
      let streamAcks = 0;
      const streamed = Array.from({ length: requests }, async (_, i) => {
        const steps: Step[] = [];
        for await (const step of client.reserveStream({ n: 1000 + i })) {
          steps.push(step);
          if (steps.length === 1) streamAcks++;
        }
        return steps;
      });
      await until(() => streamAcks === requests, "every stream's acknowledgement");
      // then the event requests, queued behind the streams' work: most are still waiting at the restart
      const acks = await Promise.all(
        Array.from({ length: requests }, (_, i) =>
          client.reserve({ n: i }, { headers: outcomeHeaders(outcomes, { correlationId: `r-${i}` }) }),
        ),
      );
      expect(acks).toHaveLength(requests);

      // the graceful restart, while work is under way
      const workedBefore = await first.stop();
      const streams = await Promise.all(streamed);
      const second = await launch(queue, workers);
      const after = clientOf(second.port);
      const more = 10;
      for (let i = 0; i < more; i++)
        await after.reserve(
          { n: 500 + i },
          { headers: outcomeHeaders(outcomes, { correlationId: `m-${i}` }) },
        );
      const streamedAfter: Step[] = [];
      for await (const step of after.reserveStream({ n: 2000 })) streamedAfter.push(step);

      await until(() => seen.length >= requests + more, "every outcome event");
      const workedAfter = await second.stop();
      // every stream: exactly the acknowledgement then its own outcome
      for (let i = 0; i < requests; i++) {
        const steps = streams[i]!;
        expect(steps).toHaveLength(2);
        expect(typeof (steps[0] as { accepted: string }).accepted).toBe("string");
        expect((steps[1] as { outcome: Done }).outcome).toEqual({ n: 1000 + i, doubled: 2 * (1000 + i) });
      }
      expect(streamedAfter).toHaveLength(2);
      // every event request: exactly one outcome, its own
      const counts = new Map<string, number>();
      for (const s of seen) counts.set(s.correlationId ?? "", (counts.get(s.correlationId ?? "") ?? 0) + 1);
      const expected = [
        ...Array.from({ length: requests }, (_, i) => `r-${i}`),
        ...Array.from({ length: more }, (_, i) => `m-${i}`),
      ];
      expect([...counts.keys()].sort()).toEqual(expected.sort());
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
      for (const s of seen) {
        const i = Number(s.correlationId!.slice(2));
        const n = s.correlationId!.startsWith("r-") ? i : 500 + i;
        expect(s.body).toEqual({ n, doubled: 2 * n });
      }
      // the work was done once per request, across both server lifetimes
      expect(workedBefore + workedAfter).toBe(2 * requests + more + 1);
      // where the broker kept the commands not yet started, the restarted server did them
      if (options.queuesWhileAway === true) expect(workedAfter).toBeGreaterThan(more + 1);
    }

    const restartTitle = `${requests} RPC-then-event and ${requests} RPC-stream-ack requests in flight; server shut down gracefully and started again; each request gets exactly one outcome`;
    it(`graceful restart in one process (counted): ${restartTitle}`, () => restartRun(inProcess));
    it.runIf(options.process !== undefined)(
      `graceful restart of a server process (SIGTERM; counted): ${restartTitle}`,
      () => restartRun(inChild),
    );
  });
}
