/**
 * The broker conformance suite of `@weft/testing` against both NATS brokers, each declaring exactly
 * the features its own tests prove. Core NATS runs on the machine's server; JetStream on a private
 * server (a free port, a temporary store), because the suite's destinations all start with `conf.`
 * and a stream covering `conf.>` would answer core NATS requests with its publish acks.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerConformance, freePort, killAndRemove } from "@weft/testing";
import { afterAll, beforeAll } from "vitest";
import { JETSTREAM_FEATURES, jetStreamBroker, NATS_FEATURES, natsBroker } from "../src/index.ts";
import { ensureNats, SERVERS, startNatsServer } from "./integration/helpers.ts";

let jetStreamServer: ChildProcess | undefined;
let jetStreamServers = "";
const store = mkdtempSync(join(tmpdir(), "weft-nats-conformance-"));
beforeAll(async () => {
  ensureNats();
  const port = await freePort();
  jetStreamServer = await startNatsServer(port, store);
  jetStreamServers = `127.0.0.1:${port}`;
});
afterAll(async () => {
  if (jetStreamServer !== undefined) await killAndRemove(jetStreamServer, store);
});

brokerConformance("nats", () => natsBroker({ servers: SERVERS }), NATS_FEATURES);
brokerConformance("jetstream", () => jetStreamBroker({ servers: jetStreamServers }), JETSTREAM_FEATURES);
