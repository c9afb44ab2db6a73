import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A TCP port free on loopback right now, for a test server that cannot listen on port 0 and say
 * which port it got (etcd, Prometheus). Another process could take it before the server binds it.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Kills a test server's process (SIGKILL) if it still runs; resolves once it has exited. */
export async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGKILL");
  await exited;
}

/** Kills a test server's process (SIGKILL) if it still runs, then removes its data directory. */
export async function killAndRemove(child: ChildProcess, dataDir: string): Promise<void> {
  await killed(child);
  rmSync(dataDir, { recursive: true, force: true });
}
