/** Contracts between the orchestrator, the server/client host processes and the systems under test. */

export const SYSTEMS = ["raw", "grpc", "moleculer", "weft", "weft-grpc", "http", "weft-rest"] as const;
export type SystemName = (typeof SYSTEMS)[number];

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

export type StartServer = () => Promise<BenchServer>;
export type ConnectClient = (port: number, payloadBytes: number) => Promise<BenchClient>;

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
