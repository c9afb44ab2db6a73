/*
 * A responder process of the request/reply fault test: a messenger on `rabbitBroker` that answers
 * each request on `destination` (group `responders`) with its own number after a random delay of up
 * to `maxDelayMs`, and tells the parent over IPC when it is subscribed and how many it answered.
 *
 * argv: exchange destination maxDelayMs
 */
import { createMessenger, destination } from "@weft/messaging";
import { childBroker, report } from "../rabbit.ts";

const [exchange, name, maxDelayMs] = process.argv.slice(2);
const broker = await childBroker(exchange!);
const messenger = createMessenger({ broker });
let answered = 0;
await messenger.subscribe(
  destination<{ n: number }>(name!),
  async (message) => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * Number(maxDelayMs)));
    await message.reply({ n: message.body.n });
    answered++;
  },
  { group: "responders", maxInFlight: 64 },
);
await report({ ready: true });
setInterval(() => process.send!({ answered }), 50).unref();
