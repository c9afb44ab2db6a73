/*
 * A consumer process of the fault tests: joins group `group` on `destination` of the JetStream
 * broker, handles each delivery for a random 5–30 ms, and tells the parent each step: `got` (with
 * the attempt) when the handler starts, `done` when it finished (written to the IPC channel before
 * the ack is sent, so a message acked at the server was reported done), `acked` once the server
 * confirmed the ack. The parent kills it with SIGKILL whenever it likes.
 */
import { jetStreamBroker } from "../../src/index.ts";

const [servers, destination, group, maxInFlight, ackWaitMs] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const broker = await jetStreamBroker({ servers, stream: { storage: "memory" } });
const text = new TextDecoder();
const tell = (message: object) => new Promise<void>((resolve) => process.send?.(message, () => resolve()));
await broker.subscribe(
  {
    destination,
    group,
    maxInFlight: Number(maxInFlight),
    ackWaitMs: Number(ackWaitMs),
    partitions: undefined,
  },
  (d) => {
    const body = text.decode(d.envelope.body);
    void tell({ got: body, attempt: d.attempt });
    setTimeout(
      async () => {
        await tell({ done: body });
        await d.ack();
        void tell({ acked: body });
      },
      5 + Math.random() * 25,
    );
  },
);
process.send?.("ready");
