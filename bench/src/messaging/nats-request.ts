/**
 * The request/reply cases over core NATS: `messenger.request` to a messenger responder, and its
 * anchor, the raw `@nats-io` client's `request` to a queue subscription that `respond`s. Both ends
 * run in this process, on connections of their own.
 */
import { connect } from "@nats-io/transport-node";
import { natsBroker } from "@weft/broker-nats";
import { rawBytes, SILENT_LOGGER } from "@weft/core";
import { createMessenger, destination } from "@weft/messaging";
import type { BenchClient } from "../types.ts";

const SERVERS = "127.0.0.1:4222";
const TIMEOUT_MS = 5000;

export async function requestClient(
  raw: boolean,
  subject: string,
  payload: Uint8Array,
): Promise<BenchClient> {
  return raw ? rawClient(subject, payload) : weftClient(subject, payload);
}

async function rawClient(subject: string, payload: Uint8Array): Promise<BenchClient> {
  const responder = await connect({ servers: SERVERS });
  const requester = await connect({ servers: SERVERS });
  responder.subscribe(subject, { queue: "bench", callback: (_err, msg) => void msg.respond(msg.data) });
  await responder.flush();
  return {
    echo: async () => {
      const reply = await requester.request(subject, payload, { timeout: TIMEOUT_MS });
      if (reply.data.byteLength !== payload.byteLength) throw new Error("wrong reply size");
    },
    stream: () => Promise.reject(new Error("no stream case")),
    close: async () => {
      await Promise.all([requester.close(), responder.close()]);
    },
  };
}

async function weftClient(subject: string, payload: Uint8Array): Promise<BenchClient> {
  const [a, b] = await Promise.all([natsBroker({ servers: SERVERS }), natsBroker({ servers: SERVERS })]);
  const responder = createMessenger({ broker: a, logger: SILENT_LOGGER });
  const requester = createMessenger({ broker: b, logger: SILENT_LOGGER });
  const d = destination<Uint8Array>(subject, { codec: rawBytes });
  await responder.subscribe(d, (m) => m.reply(m.body, { codec: rawBytes }), {
    group: "bench",
    maxInFlight: 256,
  });
  return {
    echo: async () => {
      const reply = await requester.request<Uint8Array, Uint8Array>(d, payload, {
        reply: rawBytes,
        timeoutMs: TIMEOUT_MS,
      });
      if (reply.byteLength !== payload.byteLength) throw new Error("wrong reply size");
    },
    stream: () => Promise.reject(new Error("no stream case")),
    close: async () => {
      await Promise.all([requester.close({ graceMs: 0 }), responder.close({ graceMs: 0 })]);
      await Promise.all([a.close(), b.close()]);
    },
  };
}
