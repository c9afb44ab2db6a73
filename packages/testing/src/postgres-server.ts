/**
 * A PostgreSQL cluster of the test's own: Debian's server binaries (`/usr/lib/postgresql/<n>/bin`),
 * `initdb` into a fresh directory and `postgres` on a free loopback port, with `wal_level=logical`
 * (for logical replication tests), so the machine's own instance is never reconfigured. PostgreSQL
 * refuses to run as root: as root the cluster runs as the `postgres` user.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort, killAndRemove, killed } from "./processes.ts";

const VERSIONS = "/usr/lib/postgresql";
/** How long the server may take to accept connections after a (re)start, in milliseconds. */
const READY_TIMEOUT_MS = 30_000;

/** A running cluster started by `startPostgres()`. */
export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, replication allowed). */
  readonly url: string;
  readonly port: number;
  /** Kills the server (`SIGKILL`, as a crash), keeping its data directory for `restart()`. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data after `kill()`; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

function binaries(): string {
  let versions: string[];
  try {
    versions = readdirSync(VERSIONS).sort((a, b) => Number(b) - Number(a));
  } catch {
    versions = [];
  }
  if (versions[0] === undefined)
    throw new Error(`no PostgreSQL server binaries under ${VERSIONS}: install Debian's postgresql package`);
  return join(VERSIONS, versions[0], "bin");
}

/** The uid/gid to run the server as: the `postgres` user when this process is root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  return { uid, gid };
}

async function ready(child: ChildProcess, url: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (let pause = 20; ; pause = Math.min(200, pause * 2)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`postgres exited with ${child.exitCode ?? child.signalCode} before it was ready`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query("SELECT 1");
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`postgres did not answer at ${url}`, { cause: error });
    } finally {
      await client.end().catch(() => undefined);
    }
    await sleep(pause); // the poll's interval: the server says nothing when it is ready
  }
}

/**
 * Starts a fresh cluster (`initdb`, trust authentication, `wal_level=logical`, 8 replication slots
 * and senders, fsync off) on a free loopback port. Resolves once it accepts connections.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binaries();
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), "weft-pg-"));
  if (user !== undefined) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  execFileSync(
    join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
    {
      stdio: ["ignore", "ignore", "inherit"],
      ...user,
    },
  );
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const spawnServer = (): ChildProcess =>
    spawn(
      join(bin, "postgres"),
      [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "wal_level=logical",
        "-c",
        "max_replication_slots=8",
        "-c",
        "max_wal_senders=8",
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
      ],
      { stdio: ["ignore", "ignore", "ignore"], ...user },
    );
  let child = spawnServer();
  const stop = (): Promise<void> => killAndRemove(child, dir);
  try {
    await ready(child, url);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    port,
    kill: () => killed(child),
    async restart() {
      if (child.exitCode === null && child.signalCode === null) return;
      child = spawnServer();
      await ready(child, url);
    },
    stop,
  };
}
