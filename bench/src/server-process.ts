/**
 * Server host process: `node server-process.ts <system> [registry-dir]`.
 * Prints `{"port":N}` on stdout once listening. Over IPC (when forked) it answers `{type:"cpu"}`
 * with its cumulative CPU time and shuts down on `{type:"stop"}` or when the parent goes away.
 */
import { hostOverIpc } from "./host.ts";
import { loadServer } from "./systems/index.ts";
import { SYSTEMS, type SystemName } from "./types.ts";

const system = process.argv[2];
if (!isSystem(system)) {
  process.stderr.write(`usage: server-process.ts <${SYSTEMS.join("|")}> [registry-dir]\n`);
  process.exit(2);
}

hostOverIpc(await (await loadServer(system))({ registryDir: process.argv[3] ?? null }));

function isSystem(value: string | undefined): value is SystemName {
  return (SYSTEMS as readonly string[]).includes(value ?? "");
}
