/**
 * The server side of the orchestrator's IPC, for every server host process: prints `{"port":N}` on
 * stdout, answers `{type:"cpu"}` with its cumulative CPU time (plus the host's own counters, if it
 * has any) and shuts the server down on `{type:"stop"}`, a signal, or when the parent goes away.
 */
import { type BenchServer, type CpuMessage, isRecord } from "./types.ts";

export function hostOverIpc(server: BenchServer, counters: () => Record<string, number> = () => ({})): void {
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
      process.send?.({ ...counters(), ...reply });
    } else if (message.type === "stop") {
      void stop();
    }
  });
  process.on("disconnect", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}
