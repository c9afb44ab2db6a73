/** Contracts between the orchestrator, the server/client host processes and the systems under test. */

export const SYSTEMS = [
  "raw",
  "grpc",
  "moleculer",
  "weft",
  "weft-chain",
  "weft-spin1",
  "weft-deadline",
  "weft-p2c3",
  "weft-static3",
  "weft-grpc",
  "http",
  "weft-rest",
  "weft-metrics",
  "weft-trace-noop",
  "weft-trace-1pct",
  "weft-trace-100pct",
  "weft-observed",
] as const;
export type SystemName = (typeof SYSTEMS)[number];

/** How a system is deployed, beyond its server and client code. */
export interface SystemSpec {
  /** Server processes the orchestrator starts per run (default 1); their CPU is summed. */
  servers: number;
  /**
   * True when the servers register in a local registry (a fresh temp directory per run, passed to
   * the servers and the client) and the client finds them through it instead of one port.
   */
  registry: boolean;
}

const SPECS: Partial<Record<SystemName, SystemSpec>> = {
  "weft-p2c3": { servers: 3, registry: true },
  "weft-static3": { servers: 3, registry: true },
};

export function specOf(system: SystemName): SystemSpec {
  return SPECS[system] ?? { servers: 1, registry: false };
}

/** REST is request/response: these systems have no server-streaming case (reported as n/a, not run). */
const UNARY_ONLY: ReadonlySet<SystemName> = new Set(["http", "weft-rest"]);

export function supportsCase(system: SystemName, kind: CaseKind): boolean {
  return kind === "unary" || !UNARY_ONLY.has(system);
}

/** Systems whose payload is `{"data":"<string of N characters>"}` as JSON instead of N raw bytes. */
const JSON_PAYLOAD: ReadonlySet<SystemName> = new Set(["moleculer", "http", "weft-rest"]);

export function payloadOf(system: SystemName): "bytes" | "json-string" {
  return JSON_PAYLOAD.has(system) ? "json-string" : "bytes";
}

/** A running server of one system, listening on loopback. */
export interface BenchServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A connected client of one system. The client builds its own request payload of the size it
 * was given, so the load loop measures only the call itself.
 */
export interface BenchClient {
  /** One unary echo; rejects if the reply is not the size that was sent. */
  echo(): Promise<void>;
  /**
   * One server-streaming call asking for `count` messages; resolves with how many arrived.
   * Systems for which `supportsCase(system, "server-stream")` is false reject.
   */
  stream(count: number): Promise<number>;
  close(): Promise<void>;
}

/** Where a run's servers meet their client besides a port. */
export interface RunEnv {
  /** The local registry's directory of the run, for systems whose spec has `registry`; else null. */
  registryDir: string | null;
}

export type StartServer = (env: RunEnv) => Promise<BenchServer>;
/** `port` is the first server's; systems with a registry find every server through `env`. */
export type ConnectClient = (port: number, payloadBytes: number, env: RunEnv) => Promise<BenchClient>;

export type CaseKind = "unary" | "server-stream";

/** What the orchestrator passes to a client process (as one JSON argument). */
export interface ClientJob {
  system: SystemName;
  port: number;
  kind: CaseKind;
  payloadBytes: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Messages asked for per server-streaming call. */
  streamMessages: number;
  /** Unary cases: calls per second offered in an open loop (`--rate`), or null for the closed loop. */
  ratePerSec: number | null;
  /** See `RunEnv`. */
  registryDir: string | null;
}

/** The one JSON line a client process prints on stdout when it is done. */
export interface ClientResult {
  /** Requests (unary) or messages (server-stream) completed inside the measured window. */
  count: number;
  windowUs: number;
  cpuUs: number;
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  /** Set by the fixed-rate (open) loop only. */
  rate?: RateFigures;
}

/**
 * What the fixed-rate loop adds to a `ClientResult`, whose `count` there is the calls that completed
 * inside the window, ok or failed, and whose latencies are those of the ok ones, from when each was due.
 */
export interface RateFigures {
  /** The rate asked for, calls/s. */
  ratePerSec: number;
  /** Calls that fell due inside the window (issued or dropped). */
  offered: number;
  /** Calls that completed inside the window with an error (included in `count`). */
  errors: number;
  /** Calls that fell due inside the window but were not issued: the cap on calls in flight was reached. */
  dropped: number;
  /** Calls in flight when the window ended (neither counted nor timed). */
  inFlightAtEnd: number;
  /** The first error's message, if any call failed. */
  firstError: string | null;
}

/** IPC: client → orchestrator, at the edges of the measured window. */
export interface WindowMessage {
  type: "window";
  edge: "start" | "end";
}

/** IPC: orchestrator → server. */
export interface ServerCommand {
  type: "cpu" | "stop";
}

/** IPC: server → orchestrator, the answer to a "cpu" command. */
export interface CpuMessage {
  type: "cpu";
  userUs: number;
  systemUs: number;
}

/** The first 4 bytes of a streaming request carry the number of messages wanted (big-endian u32). */
export function makeStreamRequest(count: number, payloadBytes: number): Buffer {
  const req = Buffer.alloc(Math.max(4, payloadBytes), 0x61);
  req.writeUInt32BE(count, 0);
  return req;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}
