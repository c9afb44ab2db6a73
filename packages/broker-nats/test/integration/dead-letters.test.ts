/**
 * `weft dlq` on JetStream, against the machine's server: the dead-letter suite (dead letters kept for
 * the dlq group, listed without being consumed, replayed by id and all), and the broker URL schemes
 * of NATS (`natsScheme`) opening real brokers.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError } from "@weft/core";
import { openBroker } from "@weft/messaging";
import { deadLetterConformance } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetStreamBroker, natsScheme } from "../../src/index.ts";
import { deleteStreams, ensureNats, rawConnection, SERVERS, unique } from "./helpers.ts";

const token = unique();
let raw: NatsConnection;
beforeAll(async () => {
  ensureNats();
  raw = await rawConnection();
});
afterAll(async () => {
  await deleteStreams(raw, [token, `${token}-dlq`, `${token}x`]);
  await raw.close();
});

// replays keep the message id, which JetStream deduplicates within its duplicate window: a short one
// here, waited out before each replay
deadLetterConformance(
  "jetstream",
  () => jetStreamBroker({ servers: SERVERS, stream: { duplicateWindowMs: 200, storage: "memory" } }),
  { prefix: token, replayAfterMs: 250, outOfOrderAcks: false },
);

describe("natsScheme", () => {
  const schemes = { nats: natsScheme, jetstream: natsScheme };

  it("opens core NATS for nats:// and JetStream for jetstream://, with parameters", async () => {
    const core = await openBroker(`nats://${SERVERS}?name=dlq-test&maxPending=10`, schemes);
    expect(core.name).toBe("nats");
    expect(core.browse).toBeUndefined();
    await core.close();
    const jet = await openBroker(
      `jetstream://${SERVERS},127.0.0.1:4222?prefix=${token}x&storage=memory&duplicateWindowMs=1000&deliverPolicy=all`,
      schemes,
    );
    expect(jet.name).toBe("jetstream");
    expect(typeof jet.browse).toBe("function");
    await jet.close();
  });

  it("refuses a path, a missing host:port, an unknown parameter and a bad value with ConfigError", async () => {
    for (const bad of [
      `nats://${SERVERS}/x`,
      "nats://",
      "nats://localhost",
      `nats://${SERVERS}?prefix=x`,
      `jetstream://${SERVERS}?maxPending=1`,
      `jetstream://${SERVERS}?maxAgeMs=-1`,
      `jetstream://${SERVERS}?storage=tape`,
    ])
      await expect(openBroker(bad, schemes), bad).rejects.toThrow(ConfigError);
  });

  it("never shows the password in its errors", async () => {
    await expect(openBroker("nats://u:s3cret@localhost", schemes)).rejects.not.toThrow(/s3cret/);
  });
});
