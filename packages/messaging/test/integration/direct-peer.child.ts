/*
 * A process of the direct broker tests: joins the local registry in `directory` (if any), subscribes to
 * `destination` in `group` through a messenger, reports every message it takes to its parent
 * (`{ id }`) and, for a request, replies with the request's body after a random delay of up to
 * `replyDelayMs`.
 */
import { createLocalRegistry, SILENT_LOGGER } from "@weft/core";
import { createMessenger, destination, directBroker } from "../../src/index.ts";

interface Config {
  /** The registry's directory; none: no registry, the parent lists this process statically. */
  readonly directory: string | undefined;
  readonly destination: string;
  readonly group: string;
  readonly replyDelayMs: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const broker = await directBroker(
  config.directory === undefined
    ? {}
    : { registry: createLocalRegistry({ directory: config.directory, pollIntervalMs: 100 }) },
);
const messenger = createMessenger({ broker, logger: SILENT_LOGGER });
await messenger.subscribe(
  destination<unknown>(config.destination),
  async (message) => {
    process.send?.({ id: message.id });
    if (message.replyTo === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, Math.random() * config.replyDelayMs));
    await message.reply(message.body);
  },
  { group: config.group, maxInFlight: 16 },
);
process.send?.({ ready: broker.address });
