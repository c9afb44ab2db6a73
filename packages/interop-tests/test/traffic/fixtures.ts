/**
 * What the fault tests share: echo server processes (`echo-server.ts`, run with this Node and the
 * workspace's source condition), a closed-loop load driver counting outcomes per instance, and a
 * bounded poll.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createClient, type Registry, type Transport, WeftError } from "@weft/core";
import { createEtcdRegistry } from "@weft/registry-etcd";
import { type EtcdServer, startEtcd } from "@weft/testing";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { type EchoServerArgs, TrafficEcho } from "./echo.ts";

const SCRIPT = fileURLToPath(new URL("./echo-server.ts", import.meta.url));
/** How long a process may take to start, register and print its ready line, in milliseconds. */
const READY_TIMEOUT_MS = 20_000;

/** A running `echo-server.ts`. */
export interface EchoProcess {
  readonly id: string;
  /** Its Weft TCP port. */
  readonly weft: number;
  /** Its gRPC port, when started with `grpc: true`. */
  readonly grpc: number | undefined;
  /** Sets the handler's latency; resolves once the process confirmed it. */
  setLatency(ms: number): Promise<void>;
  /** `SIGKILL`: no deregistration, sockets closed by the kernel. Resolves once it exited. */
  kill(): Promise<void>;
  /** `SIGTERM`: graceful shutdown (deregister, wait, drain). Resolves once it exited. */
  terminate(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Kills every echo process still running (for `afterAll`/`afterEach`). */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((child) => exited(child, "SIGKILL")));
}

async function exited(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, "exit");
  child.kill(signal);
  await exit;
}

/** Starts an echo server process; resolves once it has registered (its ready line). */
export async function startEchoServer(args: EchoServerArgs): Promise<EchoProcess> {
  const child = spawn(process.execPath, ["--conditions=@weft/source", SCRIPT, JSON.stringify(args)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const lines = new EventEmitter();
  createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on("line", (line) =>
    lines.emit(line.split(" ", 1)[0] ?? "", line.slice(line.indexOf(" ") + 1)),
  );
  /** The rest of the next line starting with `word`; rejects when the process exits or after the timeout. */
  const next = async (word: string, timeoutMs: number): Promise<string> => {
    const exit = new AbortController();
    const onExit = () => exit.abort(new Error(`${args.id} exited before printing "${word}"`));
    child.once("exit", onExit);
    try {
      const signal = AbortSignal.any([exit.signal, AbortSignal.timeout(timeoutMs)]);
      const [rest] = (await once(lines, word, { signal })) as [string];
      return rest;
    } catch (error) {
      throw exit.signal.aborted ? exit.signal.reason : error;
    } finally {
      child.off("exit", onExit);
    }
  };
  let ready: { weft: number; grpc?: number };
  try {
    ready = JSON.parse(await next("ready", READY_TIMEOUT_MS)) as typeof ready;
  } catch (error) {
    await exited(child, "SIGKILL");
    throw error;
  }
  return {
    id: args.id,
    weft: ready.weft,
    grpc: ready.grpc,
    async setLatency(ms) {
      const confirmed = next("latency", 5_000);
      child.stdin?.write(`latency ${ms}\n`);
      await confirmed;
    },
    kill: () => exited(child, "SIGKILL"),
    terminate: () => exited(child, "SIGTERM"),
  };
}

/** Cumulative counts at one moment, for comparing time windows. */
export interface LoadSnapshot {
  /** Milliseconds since the load started. */
  readonly atMs: number;
  readonly ok: number;
  readonly failed: number;
  /** Successful calls per instance id. */
  readonly perInstance: ReadonlyMap<string, number>;
}

/** The calls of each instance between two snapshots, and their total. */
export function windowOf(from: LoadSnapshot, to: LoadSnapshot): { total: number; of(id: string): number } {
  const of = (id: string): number => (to.perInstance.get(id) ?? 0) - (from.perInstance.get(id) ?? 0);
  return { total: to.ok - from.ok, of };
}

/** A running load: `concurrency` callers, each calling again as soon as its last call settled. */
export interface Load {
  snapshot(): LoadSnapshot;
  /** Failures by `code reason: message`, with their counts (for assertion messages). */
  failures(): Record<string, number>;
  /** Stops calling; resolves once every caller's last call settled, with the final snapshot. */
  stop(): Promise<LoadSnapshot>;
}

/** Starts `concurrency` closed-loop callers of `call`, which answers with the serving instance's id. */
export function startLoad(concurrency: number, call: (n: number) => Promise<{ id: string }>): Load {
  const started = performance.now();
  const perInstance = new Map<string, number>();
  const failures = new Map<string, number>();
  let ok = 0;
  let failed = 0;
  let stopping = false;
  const caller = async (index: number): Promise<void> => {
    for (let n = 0; !stopping; n++) {
      try {
        const { id } = await call(index * 1_000_000 + n);
        ok++;
        perInstance.set(id, (perInstance.get(id) ?? 0) + 1);
      } catch (error) {
        failed++;
        const key =
          error instanceof WeftError
            ? `${error.code} ${error.reason ?? ""}: ${error.rawMessage}`
            : `not a WeftError: ${String(error)}`;
        failures.set(key, (failures.get(key) ?? 0) + 1);
        await delay(1); // a caller failing at once must not starve the event loop
      }
    }
  };
  const snapshot = (): LoadSnapshot => ({
    atMs: performance.now() - started,
    ok,
    failed,
    perInstance: new Map(perInstance),
  });
  const callers = Array.from({ length: concurrency }, (_, i) => caller(i));
  return {
    snapshot,
    failures: () => Object.fromEntries(failures),
    async stop() {
      stopping = true;
      await Promise.all(callers);
      return snapshot();
    },
  };
}

/**
 * Polls `check` every `intervalMs` (default 20) until it returns true; throws `what` after
 * `timeoutMs`. Resolves with the milliseconds it took.
 */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(intervalMs);
  }
  return performance.now() - start;
}

/** `TrafficEcho` under a fresh key prefix of one etcd: its target, a registry to read it, its servers. */
export interface EtcdService {
  /** `etcd://host:port/traffic.v1.Echo?prefix=…`, for a transport with `schemes: { etcd: etcdScheme }`. */
  readonly target: string;
  /** An etcd registry on the same prefix, for the test to read (closed by `close`). */
  readonly registry: Registry;
  /** Starts an echo server process registering under the prefix, with a latency of 1 ms unless given. */
  start(id: string, options?: { grpc?: boolean; latencyMs?: number }): Promise<EchoProcess>;
  /** Whether the registry lists `id` now. */
  lists(id: string): Promise<boolean>;
  close(): Promise<void>;
}

/** `TrafficEcho` on the etcd at `endpoint`, under a prefix of its own; registrations last `ttlMs`. */
export function etcdService(endpoint: string, ttlMs: number): EtcdService {
  const prefix = `/weft-faults/${randomUUID()}`;
  const registry = createEtcdRegistry({ endpoints: [endpoint], prefix });
  const service = TrafficEcho.typeName;
  return {
    target: `etcd://${new URL(endpoint).host}/${service}?prefix=${encodeURIComponent(prefix)}`,
    registry,
    start: (id, options = {}) =>
      startEchoServer({
        id,
        registry: { kind: "etcd", endpoint, prefix },
        ttlMs,
        grpc: options.grpc ?? false,
        latencyMs: options.latencyMs ?? 1,
      }),
    lists: async (id) => (await registry.list(service)).some((instance) => instance.id === id),
    close: () => registry.close(),
  };
}

/**
 * One real etcd for a test file: started before its tests, stopped after them; echo processes a test
 * left running are killed after it. Returns the etcd (available once the tests run).
 */
export function useEtcd(): () => EtcdServer {
  let etcd: EtcdServer | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterEach(killAll);
  afterAll(() => etcd?.stop());
  return () => etcd ?? expect.fail("etcd is not started");
}

/**
 * `concurrency` closed-loop callers of `TrafficEcho.echo` over `transport` (5 s deadline per call);
 * resolves once each of `ids` has served a call (within 10 s).
 */
export async function echoLoad(
  transport: Transport,
  concurrency: number,
  ids: readonly string[],
): Promise<Load> {
  const client = createClient(TrafficEcho, transport);
  const load = startLoad(concurrency, (n) => client.echo({ n }, { timeoutMs: 5_000 }));
  try {
    await until(
      "every instance serves",
      () => ids.every((id) => load.snapshot().perInstance.has(id)),
      10_000,
    );
  } catch (error) {
    await load.stop();
    throw error;
  }
  return load;
}
