/**
 * The async patterns of `@weft/testing` (RPC then event, RPC stream ack) on both NATS brokers, with
 * the server restarted gracefully in this process and as a process of its own. Core NATS runs on the
 * machine's server; JetStream on a private one (a free port, a temporary store), since its streams
 * (`weft_patterns`, `weft_dlq`) would answer core NATS requests on the subjects they cover. On
 * JetStream, work accepted before the restart and not started waits in the stream for the restarted
 * server.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { asyncPatternsConformance, freePort, killAndRemove } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { jetStreamBroker, natsBroker } from "../src/index.ts";
import { ensureNats, SERVERS, startNatsServer } from "./integration/helpers.ts";

const brokerModule = fileURLToPath(new URL("./integration/patterns-broker.ts", import.meta.url));
let jetStreamServer: ChildProcess | undefined;
const jetStream = { servers: "" };
const store = mkdtempSync(join(tmpdir(), "weft-nats-patterns-"));
beforeAll(async () => {
  ensureNats();
  const port = await freePort();
  jetStreamServer = await startNatsServer(port, store);
  jetStream.servers = `127.0.0.1:${port}`;
});
afterAll(async () => {
  if (jetStreamServer !== undefined) await killAndRemove(jetStreamServer, store);
});

// core NATS pushes every command to the worker, and a subscription that stops drops the messages
// waiting for a slot (at-most-once): the worker's maxInFlight covers all it may be pushed, so a
// graceful restart drains everything it received
asyncPatternsConformance("nats", () => natsBroker({ servers: SERVERS }), {
  workerMaxInFlight: 256,
  process: { brokerModule, env: { WEFT_TEST_NATS_KIND: "nats", WEFT_TEST_NATS_SERVERS: SERVERS } },
});

const env: Record<string, string> = { WEFT_TEST_NATS_KIND: "jetstream" };
asyncPatternsConformance("jetstream", () => jetStreamBroker({ servers: jetStream.servers }), {
  queuesWhileAway: true,
  process: {
    brokerModule,
    get env() {
      return { ...env, WEFT_TEST_NATS_SERVERS: jetStream.servers };
    },
  },
});
