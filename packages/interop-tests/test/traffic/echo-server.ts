/**
 * An echo server process for the fault tests. Its one argument is `EchoServerArgs` as JSON. It
 * serves `TrafficEcho` over Weft TCP (and gRPC with `grpc: true`) on free loopback ports, registers
 * in the registry named, and prints one line `ready {"id","weft","grpc"}` once registered. On stdin,
 * `latency <ms>` sets the handler's latency and is answered `latency <ms>`. On SIGTERM it shuts down
 * gracefully (deregister, wait, drain), closes its registry, prints `stopped` and exits.
 */
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { createLocalRegistry, createServer, type Registry } from "@weft/core";
import { listenGrpc } from "@weft/grpc";
import { createEtcdRegistry } from "@weft/registry-etcd";
import { type EchoServerArgs, TrafficEcho } from "./echo.ts";

const args = JSON.parse(process.argv[2] ?? "") as EchoServerArgs;
let latencyMs = args.latencyMs;

const server = createServer({ onError: (error) => console.error(`${args.id}: ${String(error)}`) });
server.register(TrafficEcho, {
  echo: async ({ n }) => {
    if (latencyMs > 0) await delay(latencyMs);
    return { n, id: args.id };
  },
});
const { port: weft } = await server.listen({ host: "127.0.0.1", port: 0 });
const grpc = args.grpc ? (await listenGrpc(server, { host: "127.0.0.1", port: 0 })).port : undefined;
const registry: Registry =
  args.registry.kind === "etcd"
    ? createEtcdRegistry({ endpoints: [args.registry.endpoint], prefix: args.registry.prefix })
    : createLocalRegistry({ directory: args.registry.directory });
await server.registerWith(registry, { id: args.id, ttlMs: args.ttlMs });
process.stdout.write(`ready ${JSON.stringify({ id: args.id, weft, grpc })}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, value] = line.trim().split(/\s+/);
  if (command === "latency" && value !== undefined) {
    latencyMs = Number(value);
    process.stdout.write(`latency ${latencyMs}\n`);
  }
});

process.once("SIGTERM", async () => {
  await server.shutdown({ timeoutMs: 5_000 });
  await registry.close();
  process.stdout.write("stopped\n");
  process.exit(0);
});
