/**
 * Client host process: `node client-process.ts '<ClientJob as JSON>'`.
 * Connects, runs the warm-up and the measured window, prints one ClientResult JSON line on stdout
 * and exits. When forked it tells the parent over IPC where the window starts and ends.
 */
import { runStream, runUnary, runUnaryAtRate } from "./load.ts";
import { loadClient } from "./systems/index.ts";
import type { ClientJob, WindowMessage } from "./types.ts";

const job = JSON.parse(process.argv[2] ?? "null") as ClientJob | null;
if (job === null) {
  process.stderr.write("usage: client-process.ts '<job json>'\n");
  process.exit(2);
}

const onWindow = (edge: "start" | "end"): void => {
  const message: WindowMessage = { type: "window", edge };
  process.send?.(message);
};

const client = await (await loadClient(job.system))(job.port, job.payloadBytes, {
  registryDir: job.registryDir,
});
// a job written by hand may leave the rate out: the closed loop
const ratePerSec = job.ratePerSec ?? null;
const phases = { warmupMs: job.warmupMs, durationMs: job.durationMs, onWindow };
const result =
  job.kind !== "unary"
    ? await runStream(client, job.streamMessages, phases)
    : ratePerSec === null
      ? await runUnary(client, { concurrency: job.concurrency, ...phases })
      : await runUnaryAtRate(client, { ratePerSec, ...phases });
process.stdout.write(`${JSON.stringify(result)}\n`);

const force = setTimeout(() => process.exit(0), 2000);
force.unref();
try {
  await client.close();
} finally {
  process.exit(0);
}
