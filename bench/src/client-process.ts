/**
 * Client host process: `node client-process.ts '<ClientJob as JSON>'`.
 * Connects, runs the warm-up and the measured window, prints one ClientResult JSON line on stdout
 * and exits. When forked it tells the parent over IPC where the window starts and ends.
 */
import { runStream, runUnary } from "./load.ts";
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
const result =
  job.kind === "unary"
    ? await runUnary(client, {
        concurrency: job.concurrency,
        warmupMs: job.warmupMs,
        durationMs: job.durationMs,
        onWindow,
      })
    : await runStream(client, job.streamMessages, {
        warmupMs: job.warmupMs,
        durationMs: job.durationMs,
        onWindow,
      });
process.stdout.write(`${JSON.stringify(result)}\n`);

const force = setTimeout(() => process.exit(0), 2000);
force.unref();
try {
  await client.close();
} finally {
  process.exit(0);
}
