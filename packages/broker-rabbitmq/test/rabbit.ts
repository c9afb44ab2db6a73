/*
 * The machine's RabbitMQ for the tests: started when it is down (never skipped), names unique per
 * test, a raw amqplib connection to look at and clean up queues, and the server-side close of a
 * broker's connection (a connection loss the broker did not ask for).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { Broker } from "@weft/messaging";
import amqplib, { type Channel, type ChannelModel } from "amqplib";
import { rabbitBroker } from "../src/index.ts";

export const RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672";

/** Starts the machine's RabbitMQ when nothing answers on 5672; throws (failing the test) if it cannot. */
export function ensureRabbit(): void {
  execFileSync("bash", [fileURLToPath(new URL("../../../scripts/ensure-rabbitmq.sh", import.meta.url))], {
    stdio: "inherit",
  });
}

/** A name no other test run uses: `<prefix>-<random hex>`. */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString("hex")}`;
}

/** A raw client: the tests' view of what RabbitMQ holds. */
export interface Raw {
  readonly connection: ChannelModel;
  readonly channel: Channel;
  /** Deletes the exchange and every queue whose name starts with `<exchange>/`. */
  cleanup(exchange: string): Promise<void>;
  close(): Promise<void>;
}

export async function rawClient(): Promise<Raw> {
  const connection = await amqplib.connect(RABBIT_URL);
  const channel = await connection.createChannel();
  return {
    connection,
    channel,
    async cleanup(exchange) {
      for (const queue of queuesOf(exchange)) await channel.deleteQueue(queue);
      await channel.deleteExchange(exchange);
    },
    close: () => connection.close(),
  };
}

/** The queues of the `<exchange>/…` naming that RabbitMQ holds now. */
export function queuesOf(exchange: string): string[] {
  const out = execFileSync("rabbitmqctl", ["-q", "list_queues", "name", "--formatter", "json"], {
    encoding: "utf8",
  });
  const rows = JSON.parse(out) as { name: string }[];
  return rows.map((r) => r.name).filter((name) => name.startsWith(`${exchange}/`));
}

/** How many consumers `queue` has now (0 when it does not exist). */
export function consumers(queue: string): number {
  const out = execFileSync("rabbitmqctl", ["-q", "list_queues", "name", "consumers", "--formatter", "json"], {
    encoding: "utf8",
  });
  const rows = JSON.parse(out) as { name: string; consumers: number }[];
  return rows.find((r) => r.name === queue)?.consumers ?? 0;
}

/** Closes, from the server side, every connection whose client named itself `connectionName`. Returns how many. */
export function closeConnections(connectionName: string): number {
  const out = execFileSync(
    "rabbitmqctl",
    ["-q", "list_connections", "pid", "client_properties", "--no-table-headers"],
    {
      encoding: "utf8",
    },
  );
  let closed = 0;
  for (const line of out.split("\n")) {
    const [pid, properties] = line.split("\t");
    if (pid === undefined || !properties?.includes(`{"connection_name","${connectionName}"}`)) continue;
    execFileSync("rabbitmqctl", ["-q", "close_connection", pid, "test: server-side close"]);
    closed++;
  }
  return closed;
}

/** Polls `condition` every 20 ms until it holds or `timeoutMs` passes (only where no event tells). */
export async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A fixture process's broker: the test's exchange (its first argument), fast reconnects. */
export function childBroker(exchange: string): Promise<Broker> {
  return rabbitBroker({ url: RABBIT_URL, exchange, reconnect: { initialDelayMs: 20 } });
}

/** Sends `message` to the parent over IPC; resolves once it is written (so a later SIGKILL cannot lose it). */
export function report(message: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(message, (err: Error | null) => (err ? reject(err) : resolve())),
  );
}
