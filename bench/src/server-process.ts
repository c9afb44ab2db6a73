/**
 * Server host process: `node server-process.ts <system> [registry-dir]`.
 * Prints `{"port":N}` on stdout once listening. Over IPC (when forked) it answers `{type:"cpu"}`
 * with its cumulative CPU time and shuts down on `{type:"stop"}` or when the parent goes away.
 */
import { loadServer } from "./systems/index.ts";
import { type CpuMessage, isRecord, SYSTEMS, type SystemName } from "./types.ts";

const system = process.argv[2];
if (!isSystem(system)) {
  process.stderr.write(`usage: server-process.ts <${SYSTEMS.join("|")}> [registry-dir]\n`);
  process.exit(2);
}

const server = await (await loadServer(system))({ registryDir: process.argv[3] ?? null });
process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(0), 3000);
  force.unref();
  try {
    await server.close();
  } finally {
    process.exit(0);
  }
}

process.on("message", (message: unknown) => {
  if (!isRecord(message)) return;
  if (message.type === "cpu") {
    const usage = process.cpuUsage();
    const reply: CpuMessage = { type: "cpu", userUs: usage.user, systemUs: usage.system };
    process.send?.(reply);
  } else if (message.type === "stop") {
    void stop();
  }
});
process.on("disconnect", () => void stop());
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());

function isSystem(value: string | undefined): value is SystemName {
  return (SYSTEMS as readonly string[]).includes(value ?? "");
}
