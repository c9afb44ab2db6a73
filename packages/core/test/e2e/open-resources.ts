import { afterEach } from "vitest";
import type { Server, Transport } from "../../src/index.ts";
import type { RawClient, RawServer } from "../raw-peer.ts";

/*
 * What a test file of raw-peer tests opens, closed after each of its tests: a file imports these
 * lists and pushes what it opens. Each test file gets its own copy of this module.
 */
export const servers: Server[] = [];
export const transports: Transport[] = [];
export const rawServers: RawServer[] = [];
export const rawClients: RawClient[] = [];

afterEach(async () => {
  for (const c of rawClients.splice(0)) c.socket.destroy();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
  await Promise.all(rawServers.splice(0).map((s) => s.close()));
});
