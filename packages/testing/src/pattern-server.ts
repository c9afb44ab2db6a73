/*
 * The pattern service as a process of its own, for `asyncPatternsConformance`'s restart across
 * processes: `node pattern-server.ts <broker module> <queue> <group> <worker maxInFlight>`. The broker module's default
 * export opens a broker connection (`() => Promise<Broker>`, configured by the environment). Prints
 * `LISTENING <port>` once it serves; on SIGTERM shuts down gracefully, prints `WORKED <count>` (work
 * done in this process) and exits 0.
 */
import type { Broker } from "@weft/messaging";
import { startRestartService } from "./pattern-service.ts";

const [brokerModule, queue, group, maxInFlight] = process.argv.slice(2);
if (brokerModule === undefined || queue === undefined || group === undefined || maxInFlight === undefined) {
  process.stderr.write("usage: pattern-server.ts <broker module> <queue> <group> <worker maxInFlight>\n");
  process.exit(2);
}
const open = (await import(brokerModule)).default as () => Promise<Broker>;
const service = await startRestartService(await open(), queue, group, Number(maxInFlight));
process.stdout.write(`LISTENING ${service.port}\n`);
process.once("SIGTERM", () => {
  void service.stop().then(
    (worked) => {
      process.stdout.write(`WORKED ${worked}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`pattern server: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
