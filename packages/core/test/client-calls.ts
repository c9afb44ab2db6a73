import { NEVER } from "../src/call/signal.ts";
import type { Call } from "../src/interceptor/call.ts";
import { Metadata } from "../src/metadata/metadata.ts";
import type { MethodInfo } from "../src/service/service.ts";

/**
 * A client call as the client builds it, for tests of what runs below the interceptors (the call
 * lifetime, the cluster): JSON, no headers; a stream when `messages` is given, else `message`
 * (default `{ n: 1 }`).
 */
export function clientCall(
  method: MethodInfo,
  options: {
    signal?: AbortSignal;
    deadline?: number;
    message?: unknown;
    messages?: AsyncIterable<unknown>;
  } = {},
): Call {
  const base = {
    method,
    side: "client",
    headers: new Metadata(),
    signal: options.signal ?? NEVER,
    deadline: options.deadline,
    serializer: "json",
    peer: undefined,
    protocol: undefined,
  } as const;
  return options.messages === undefined
    ? { ...base, stream: false, message: options.message ?? { n: 1 } }
    : { ...base, stream: true, messages: options.messages };
}
