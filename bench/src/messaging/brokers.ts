/**
 * The brokers `--messaging` measures: each a broker URL and the schemes that open it, loaded lazily
 * so that one missing or broken backend does not stop the others. URLs point at the servers of this
 * machine; streams and keys get a bench-only prefix, kept in memory or trimmed.
 */
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Broker, BrokerSchemes } from "@weft/messaging";
import { openBroker } from "@weft/messaging";

export const BENCH_BROKERS = ["memory", "direct", "nats", "jetstream", "redis", "rabbitmq"] as const;
export type BenchBroker = (typeof BENCH_BROKERS)[number];

interface BrokerSetup {
  /** The URL, given a directory of the run's own (the `direct` registry). */
  readonly url: (runDir: string) => string;
  readonly schemes: () => Promise<BrokerSchemes>;
  /** One broker is both publisher and consumer (an in-process broker). */
  readonly shared: boolean;
}

const redis = async (): Promise<BrokerSchemes> => {
  const { redisScheme } = await import("@weft/broker-redis");
  return { redis: redisScheme };
};

const nats = async (): Promise<BrokerSchemes> => {
  const { natsScheme } = await import("@weft/broker-nats");
  return { nats: natsScheme, jetstream: natsScheme };
};

const rabbit = async (): Promise<BrokerSchemes> => {
  const { rabbitScheme } = await import("@weft/broker-rabbitmq");
  return { amqp: rabbitScheme };
};

const SETUPS: Record<BenchBroker, BrokerSetup> = {
  memory: { url: () => "memory:", schemes: async () => ({}), shared: true },
  // two brokers of this process finding each other in a registry directory of the run's own
  direct: {
    url: (dir) => `direct+local:///?dir=${encodeURIComponent(dir)}&host=127.0.0.1`,
    schemes: async () => ({}),
    shared: false,
  },
  nats: { url: () => "nats://127.0.0.1:4222", schemes: nats, shared: false },
  // streams of the bench's own, in memory, gone after a minute
  jetstream: {
    url: () => "jetstream://127.0.0.1:4222?prefix=weftbench&storage=memory&maxAgeMs=60000",
    schemes: nats,
    shared: false,
  },
  // keys of the bench's own, trimmed
  redis: {
    url: () => "redis://127.0.0.1:6379?prefix=weftbench:&maxLength=10000",
    schemes: redis,
    shared: false,
  },
  // an exchange of the bench's own (its queues stay, empty, for the next run)
  rabbitmq: {
    url: () => "amqp://guest:guest@127.0.0.1:5672?exchange=weftbench",
    schemes: rabbit,
    shared: false,
  },
};

/** A fresh directory name for a run's registry (`direct`). */
export function runDir(): string {
  return join(tmpdir(), `weft-bench-messaging-${randomUUID().slice(0, 8)}`);
}

/** The publisher's and the consumer's broker (one, for an in-process broker). */
export async function openPair(
  name: BenchBroker,
  dir: string,
): Promise<{ publisher: Broker; consumer: Broker }> {
  const setup = SETUPS[name];
  const schemes = await setup.schemes();
  const publisher = await openBroker(setup.url(dir), schemes);
  const consumer = setup.shared ? publisher : await openBroker(setup.url(dir), schemes);
  return { publisher, consumer };
}
