/**
 * A service and a scripted transport for the policies' unit tests: each call the transport receives
 * is recorded (its headers and deadline at the time) and answered by `answer`.
 */
import {
  type Call,
  type CallResult,
  Code,
  createClient,
  defineService,
  type Interceptor,
  Metadata,
  messageType,
  serverStreaming,
  type Telemetry,
  type Transport,
  unary,
  WeftError,
  type WeftEventName,
} from "@weft/core";

export const Svc = defineService("test.v1.Svc", {
  read: unary(messageType<{ n: number }>(), messageType<{ n: number }>(), { idempotent: true }),
  write: unary(messageType<{ n: number }>(), messageType<{ n: number }>()),
  watch: serverStreaming(messageType<{ n: number }>(), messageType<{ n: number }>()),
});

export interface Sent {
  headers: Record<string, string>;
  deadline: number | undefined;
  signal: AbortSignal;
}

export function ok(n: number): CallResult {
  return { stream: false, headers: new Metadata(), message: { n }, trailers: new Metadata() };
}

export function unavailable(metadata: Record<string, string> = {}): WeftError {
  return new WeftError(Code.UNAVAILABLE, "down", { metadata });
}

/** A client of `Svc` with `interceptors` over a transport answering with `answer(attempt, call)`. */
export function scripted(
  interceptors: Interceptor[],
  answer: (attempt: number, call: Call) => Promise<CallResult>,
) {
  const sent: Sent[] = [];
  const transport: Transport = {
    call(call) {
      sent.push({ headers: call.headers.toJSON(), deadline: call.deadline, signal: call.signal });
      return answer(sent.length, call);
    },
    close: async () => {},
  };
  return { client: createClient(Svc, transport, { interceptors }), sent };
}

/** A telemetry receiver that keeps every event. */
export function recorder(): Telemetry & { events: Array<[WeftEventName, unknown]> } {
  const events: Array<[WeftEventName, unknown]> = [];
  return { events, event: (name, attributes) => events.push([name, attributes]) };
}
