/* Minimal calls and handlers for the policies' unit tests. */
import { type Call, type CallResult, Metadata, type UnaryResult } from "@weft/core";

/** A unary server call of `path` with `headers`, enough for interceptors that read the call. */
export function fakeCall(
  path = "/demo.Svc/Get",
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Call {
  return {
    method: { path } as Call["method"],
    side: "server",
    headers: new Metadata(headers),
    signal: signal ?? new AbortController().signal,
    deadline: undefined,
    serializer: "json",
    peer: "10.0.0.1:5000",
    protocol: "weft",
    stream: false,
    message: {},
  } as Call;
}

/** A unary result carrying `message`. */
export function okResult(message: unknown = "ok"): UnaryResult {
  return { stream: false, headers: new Metadata(), message, trailers: new Metadata() };
}

/** A handler whose calls stay pending until `finish(i)` settles the i-th. */
export function gatedHandler() {
  const pending: Array<(r: CallResult) => void> = [];
  return {
    started: () => pending.length,
    handler: (_call: Call) => new Promise<CallResult>((resolve) => pending.push(resolve)),
    finish: (i: number) => pending[i]!(okResult(i)),
  };
}
