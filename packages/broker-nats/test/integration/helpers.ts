/*
 * What the NATS brokers' tests share: the machine's NATS server (started when it is down, never
 * skipped), unique names so tests run in parallel and again, envelopes, and a bounded wait.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Broker, Delivery, Envelope } from "@weft/messaging";
import { testEnvelope, until as waitFor } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { jetStreamBroker } from "../../src/index.ts";

export const SERVERS = "127.0.0.1:4222";

/** Starts the machine's NATS server (with JetStream) when nothing answers on 127.0.0.1:4222. */
export function ensureNats(): void {
  execFileSync("bash", [fileURLToPath(new URL("../../../../scripts/ensure-nats.sh", import.meta.url))], {
    stdio: "inherit",
  });
}

/** A destination token no other test (or run) uses: `t<hex>`. */
export function unique(): string {
  return `t${randomBytes(5).toString("hex")}`;
}

const encoder = new TextEncoder();

/** An envelope as the messenger makes one, its body `body` as text. */
export function envelope(destination: string, body: string, fields: Partial<Envelope> = {}): Envelope {
  return testEnvelope(destination, { contentType: "text/plain", body: encoder.encode(body), ...fields });
}

export const bodyOf = (d: Delivery | Envelope): string =>
  new TextDecoder().decode("envelope" in d ? d.envelope.body : d.body);

/** Waits for `condition` (polling), at most `timeoutMs`; then throws, saying what it waited for. */
export function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  return waitFor(condition, what, timeoutMs);
}

/** A raw NATS connection, as any other NATS client would have. */
export function rawConnection(): Promise<NatsConnection> {
  return connect({ servers: SERVERS });
}

/** Deletes the streams whose subjects start with one of `tokens` (what a test made). */
export async function deleteStreams(nc: NatsConnection, tokens: readonly string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for await (const s of jsm.streams.list()) {
    if (
      s.config.subjects?.some((subject) => tokens.some((t) => subject === t || subject.startsWith(`${t}.`)))
    )
      await jsm.streams.delete(s.config.name);
  }
}

/** Acks the deliveries pushed into `held`, oldest first, until `count` were acked; returns their bodies. */
export async function ackInTurn(held: Delivery[], count: number): Promise<string[]> {
  const bodies: string[] = [];
  while (bodies.length < count) {
    await until("a delivery", () => held.length > 0);
    const d = held.shift()!;
    bodies.push(bodyOf(d));
    await d.ack();
  }
  return bodies;
}

/** A test file's JetStream broker (memory streams) and raw connection, set up once. */
export interface JetStreamSetup {
  readonly broker: Broker;
  readonly nc: NatsConnection;
  /** A unique first token for a test; the streams of every token handed out are deleted after the file. */
  token(): string;
}

/** Registers the `beforeAll`/`afterAll` of a JetStream test file. */
export function jetStreamSetup(): JetStreamSetup {
  const tokens: string[] = [];
  let broker: Broker | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    ensureNats();
    broker = await jetStreamBroker({ servers: SERVERS, stream: { storage: "memory" } });
    nc = await rawConnection();
  });
  afterAll(async () => {
    await broker?.close();
    if (nc === undefined) return;
    await deleteStreams(nc, tokens);
    await nc.close();
  });
  return {
    get broker() {
      return broker!;
    },
    get nc() {
      return nc!;
    },
    token() {
      const t = unique();
      tokens.push(t);
      return t;
    },
  };
}

/**
 * A private NATS server on `port`, with JetStream storing in `dir` unless `jetStream` is false, for
 * tests that kill and restart it (the machine's server is shared). Resolves once it logs that it is
 * ready.
 */
export async function startNatsServer(port: number, dir: string, jetStream = true): Promise<ChildProcess> {
  const args = ["-a", "127.0.0.1", "-p", String(port), ...(jetStream ? ["-js", "-sd", dir] : [])];
  const child = spawn("/usr/sbin/nats-server", args, {
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let log = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes("Server is ready")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`nats-server exited (${code}):\n${log}`)));
  });
  return child;
}
