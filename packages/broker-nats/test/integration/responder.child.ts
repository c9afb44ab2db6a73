/*
 * A responder process of the request/reply fault test: a messenger on `natsBroker` or
 * `jetStreamBroker` (ack wait 1 s) answering requests to `destination` in group `svc` after the delay
 * each request asks for. Tells the parent `ready`,
 * and `got`/`replied` per request (with its number; `replied` is written to the IPC channel before
 * the reply is sent), so the parent knows which requests it held unanswered when it is killed with
 * SIGKILL.
 */
import { SILENT_LOGGER } from "@weft/core";
import { createMessenger, destination } from "@weft/messaging";
import { jetStreamBroker, natsBroker } from "../../src/index.ts";

interface Ask {
  readonly n: number;
  readonly delayMs: number;
}

const [servers, backend, name] = process.argv.slice(2) as [string, "nats" | "jetstream", string];
const tell = (message: object) => new Promise<void>((resolve) => process.send?.(message, () => resolve()));
const broker = await (backend === "nats" ? natsBroker : jetStreamBroker)({ servers });
const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
await messenger.subscribe(
  destination<Ask>(name),
  async (msg) => {
    void tell({ got: msg.body.n });
    await new Promise((r) => setTimeout(r, msg.body.delayMs));
    await tell({ replied: msg.body.n });
    await msg.reply({ n: msg.body.n, pid: process.pid });
  },
  { group: "svc", maxInFlight: 200, ackWaitMs: 1_000 },
);
process.send?.("ready");
