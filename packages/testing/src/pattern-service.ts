/*
 * The server of `asyncPatternsConformance`: a Weft server whose two methods accept and submit work to
 * a queue, and a worker of that queue, on one broker connection. The same code runs in the test's
 * process and, for the restart across processes, in `pattern-server.ts`.
 */
import { createServer, defineService, messageType, SILENT_LOGGER, serverStreaming, unary } from "@weft/core";
import {
  type Accepted,
  type Broker,
  createMessenger,
  destination,
  type WorkerOptions,
  type WorkHandler,
  workQueue,
} from "@weft/messaging";

/** A piece of work: double `n`; `fail` makes every attempt fail. */
export interface Job {
  readonly n: number;
  readonly fail?: boolean;
}
export interface Done {
  readonly n: number;
  readonly doubled: number;
}
/** A message of the stream-ack method: the acknowledgement, then the outcome. */
export type Step = { readonly accepted: string } | { readonly outcome: Done };

/** The service under test: one method per pattern. */
export const Reservations = defineService("weft.testing.Reservations", {
  reserve: unary(messageType<Job>(), messageType<Accepted>()),
  reserveStream: serverStreaming(messageType<Job>(), messageType<Step>()),
});

export const double = (job: Job): Done => ({ n: job.n, doubled: job.n * 2 });

/**
 * Starts the service of the restart tests on `broker`: work is `double` after 1–4 ms, `maxInFlight`
 * at a time; `stop()` resolves with how much work this service did.
 */
export async function startRestartService(
  broker: Broker,
  queue: string,
  group: string,
  maxInFlight: number,
  waitMs?: number,
): Promise<{ readonly port: number; stop(): Promise<number> }> {
  let worked = 0;
  const work: WorkHandler<Job, Done> = async (m) => {
    await new Promise((r) => setTimeout(r, 1 + (m.body.n % 4)));
    worked++;
    return double(m.body);
  };
  const service = await startPatternService(broker, queue, group, work, { maxInFlight }, waitMs);
  return { port: service.port, stop: () => service.stop().then(() => worked) };
}

export interface PatternService {
  readonly port: number;
  /**
   * The graceful shutdown, in its order: the server (calls accepting work finish; streams wait for
   * their outcome, which the still running workers produce), then the messenger (the workers drain:
   * running work finishes and publishes its outcome), then the broker connection. Idempotent.
   */
  stop(): Promise<void>;
}

/**
 * Starts the service on `broker` (closed by `stop`): a worker of `group` on the command destination
 * `queue` doing `work`, and a Weft server on a free loopback port. `waitMs` bounds each step of `stop`.
 */
export async function startPatternService(
  broker: Broker,
  queue: string,
  group: string,
  work: WorkHandler<Job, Done>,
  worker: Partial<WorkerOptions> = {},
  waitMs = 10_000,
): Promise<PatternService> {
  const m = createMessenger({ broker, logger: SILENT_LOGGER });
  const jobs = workQueue<Job, Done>(m, destination<Job>(queue, { kind: "command" }));
  await jobs.work(work, { backoff: { initialDelayMs: 10, maxDelayMs: 50 }, ...worker, group });
  const server = createServer({ logger: SILENT_LOGGER });
  server.register(Reservations, {
    reserve: (job) => jobs.accept(job),
    async *reserveStream(job) {
      const { accepted, outcome } = jobs.submit(job);
      yield { accepted: await accepted };
      yield { outcome: await outcome };
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  let stopped: Promise<void> | undefined;
  return {
    port,
    stop: () => {
      stopped ??= (async () => {
        await server.shutdown({ timeoutMs: waitMs });
        await m.close({ graceMs: waitMs });
        await broker.close();
      })();
      return stopped;
    },
  };
}
