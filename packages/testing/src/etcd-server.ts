/**
 * A real etcd for tests: Debian's `/usr/bin/etcd` (installed by `scripts/ensure-etcd.sh` when
 * missing), on free loopback ports with its own data directory, removed when stopped. Short raft
 * timings let it grant 1 s leases (etcd raises a lease's TTL to 1.5 election timeouts).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Etcd3 } from "etcd3";
import { freePort, killAndRemove, killed } from "./processes.ts";

const ETCD = "/usr/bin/etcd";
const ENSURE = fileURLToPath(new URL("../../../scripts/ensure-etcd.sh", import.meta.url));
/** How long etcd may take to answer after it was (re)started, in milliseconds. */
const READY_TIMEOUT_MS = 20_000;

/** A running etcd started by `startEtcd()`. */
export interface EtcdServer {
  /** The client URL, `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /**
   * Kills the etcd process (`SIGKILL`, as a crash) but keeps its data directory and ports, so that
   * `restart()` brings back the same keys and revisions. Resolves once the process has exited; does
   * nothing when it is not running.
   */
  kill(): Promise<void>;
  /**
   * Starts etcd again on the same ports and data directory after `kill()`; resolves once it answers
   * (within 20 s). Does nothing when it is running.
   */
  restart(): Promise<void>;
  /** Kills etcd and removes its data directory. */
  stop(): Promise<void>;
}

/** Resolves once etcd answers a request on its client port; rejects if it exits first. */
async function ready(child: ChildProcess, endpoint: string, timeoutMs: number): Promise<void> {
  let exited: unknown;
  const onExit = (code: number | null) => {
    exited = new Error(`etcd exited with ${code} before it was ready`);
  };
  child.once("exit", onExit);
  const deadline = Date.now() + timeoutMs;
  try {
    for (let pause = 10; ; pause = Math.min(200, pause * 2)) {
      if (exited !== undefined) throw exited;
      // a fresh client per attempt: etcd3's circuit breaker would hold back a reused one
      const client = new Etcd3({ hosts: endpoint, dialTimeout: 1_000 });
      try {
        await client.maintenance.status();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`etcd did not answer at ${endpoint}`, { cause: error });
      } finally {
        client.close();
      }
      await new Promise((resolve) => setTimeout(resolve, pause)); // the poll's interval
    }
  } finally {
    child.off("exit", onExit);
  }
}

/**
 * Starts a single-member etcd on free loopback ports with a fresh data directory (heartbeat 10 ms,
 * election timeout 100 ms, so leases of 1 s are granted as asked). Resolves once it answers.
 */
export async function startEtcd(): Promise<EtcdServer> {
  execFileSync("bash", [ENSURE], { stdio: ["ignore", "inherit", "inherit"] });
  const dataDir = mkdtempSync(join(tmpdir(), "weft-etcd-"));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const spawnEtcd = (): ChildProcess =>
    spawn(
      ETCD,
      [
        "--name=weft-test",
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=weft-test=${peer}`,
        "--heartbeat-interval=10",
        "--election-timeout=100",
        "--logger=zap",
        "--log-level=error",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
  let child = spawnEtcd();
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = (): Promise<void> => killAndRemove(child, dataDir);
  const restart = async (): Promise<void> => {
    if (running()) return;
    child = spawnEtcd();
    await ready(child, endpoint, READY_TIMEOUT_MS);
  };
  try {
    await ready(child, endpoint, READY_TIMEOUT_MS);
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, kill: () => killed(child), restart, stop };
}
