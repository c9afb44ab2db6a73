/**
 * A real DNS server for tests: Debian's `/usr/sbin/dnsmasq` (installed by `scripts/ensure-dnsmasq.sh`
 * when missing), on a free loopback port with its own hosts and config files in a temp directory. It
 * answers only for the `weft.test` domain, from those files: a name it does not know there is
 * NXDOMAIN, and nothing is cached (`--local-ttl=0`, `--no-negcache`), so a rewrite shows at once.
 * Hosts are re-read on SIGHUP; SRV records (config lines) only on a restart, on the same port.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const DNSMASQ = "/usr/sbin/dnsmasq";
const ENSURE = fileURLToPath(new URL("../../../scripts/ensure-dnsmasq.sh", import.meta.url));
/** The domain the server answers for. */
export const DOMAIN = "weft.test";

/** One SRV record: `name` → `target:port` with a priority and a weight. */
export interface SrvRecord {
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface DnsServer {
  /** `127.0.0.1:<port>`, for `servers` and `dns://` authorities. */
  readonly address: string;
  /** Replaces the hosts file (name → its IPv4 and IPv6 addresses) and waits until dnsmasq re-read it. */
  setHosts(hosts: Record<string, readonly string[]>): Promise<void>;
  /** Replaces the SRV records and restarts dnsmasq (on the same port) to load them. */
  setSrv(records: readonly SrvRecord[]): Promise<void>;
  /** Stops dnsmasq; `start` brings it back on the same port with the same files. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops dnsmasq and removes its files. */
  close(): Promise<void>;
}

/** A UDP port nobody uses now: bind port 0, read it, close. */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  const { port } = socket.address();
  socket.close();
  return port;
}

// the real timers, taken before a test can fake them: the bound must hold under a fake clock too
const { setTimeout: realSetTimeout, clearTimeout: realClearTimeout } = globalThis;

/** Resolves as `promise` does, or rejects after `ms` of real time saying what did not happen. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = realSetTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => realClearTimeout(timer));
}

export async function startDnsmasq(hosts: Record<string, readonly string[]> = {}): Promise<DnsServer> {
  execFileSync("bash", [ENSURE], { stdio: ["ignore", "inherit", "inherit"] });
  const dir = mkdtempSync(join(tmpdir(), "weft-dnsmasq-"));
  const hostsFile = join(dir, "hosts");
  const confFile = join(dir, "dnsmasq.conf");
  const port = await freeUdpPort();
  const writeHosts = (h: Record<string, readonly string[]>): void => {
    const lines = Object.entries(h).flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}`));
    writeFileSync(hostsFile, `${lines.join("\n")}\n`);
  };
  writeHosts(hosts);
  writeFileSync(confFile, "");

  let child: ChildProcess | undefined;
  /** Waiters for dnsmasq's next "read <hosts file>" log line. */
  let onRead: (() => void)[] = [];

  const start = async (): Promise<void> => {
    const args = [
      "--keep-in-foreground",
      `--port=${port}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      `--local=/${DOMAIN}/`,
      `--addn-hosts=${hostsFile}`,
      `--conf-file=${confFile}`,
      `--pid-file=${join(dir, "pid")}`,
      "--local-ttl=0",
      "--no-negcache",
      "--log-facility=-",
      // as root it would drop to `nobody`, who cannot read the private temp directory
      ...(process.getuid?.() === 0 ? ["--user=root"] : []),
    ];
    const started = spawn(DNSMASQ, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = started;
    const log: string[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      onRead.push(resolve);
      started.once("exit", (code) => reject(new Error(`dnsmasq exited with ${code}: ${log.join("\n")}`)));
    });
    createInterface({ input: started.stderr! }).on("line", (line) => {
      log.push(line);
      if (!line.includes(`read ${hostsFile}`)) return;
      const waiting = onRead;
      onRead = [];
      for (const resolve of waiting) resolve();
    });
    // dnsmasq reads its hosts file after binding its sockets: that line means it answers
    await within(ready, 10_000, "dnsmasq: no start");
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, "exit");
    running.kill("SIGTERM");
    await exited;
  };

  await start();
  return {
    address: `127.0.0.1:${port}`,
    async setHosts(h) {
      writeHosts(h);
      const reread = new Promise<void>((resolve) => onRead.push(resolve));
      child?.kill("SIGHUP");
      await within(reread, 10_000, "dnsmasq: hosts not re-read");
    },
    async setSrv(records) {
      const lines = records.map(
        (r) => `srv-host=${r.name},${r.target},${r.port},${r.priority ?? 0},${r.weight ?? 0}`,
      );
      writeFileSync(confFile, `${lines.join("\n")}\n`);
      await stop();
      await start();
    },
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
