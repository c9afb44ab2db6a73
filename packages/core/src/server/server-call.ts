import type { SerializerName } from "../codec/serializer.ts";
import { type CallContext, runWithCallContext } from "../context/call-context.ts";
import type { CallResult, StreamCall, UnaryCall } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import type { MethodInfo } from "../service/service.ts";
import { kContext, type ServerHandlerContext } from "./handler.ts";
import type { RegisteredMethod, ServerCore } from "./server.ts";

/*
 * What every server-side call is made of, whichever protocol brought it (Weft's own connections in
 * `server-connection.ts`, the gRPC/Connect/REST front-ends through `external.ts`): one place, so the
 * two cannot drift apart.
 */

const NO_METADATA = new Metadata();

/** A call as the server builds it: it carries the handler context under `kContext`. */
export type ServerCall = (UnaryCall | StreamCall) & { readonly [kContext]: ServerHandlerContext };

/** Builds the call context a handler's outgoing calls inherit. */
export function callContextOf(
  core: ServerCore,
  method: MethodInfo,
  headers: Metadata,
  deadline: number | undefined,
  signal: AbortSignal,
): CallContext {
  return {
    deadline,
    signal,
    propagate: core.propagatedFrom(headers) ?? NO_METADATA,
    path: method.path,
  };
}

/**
 * The call the server's interceptor chain sees. `input` is the request message for unary and
 * one-way methods, the request stream (an `AsyncIterable`) for the others. Every call object is
 * built by this one literal, so they all have the same shape.
 */
export function serverCall(
  method: MethodInfo,
  headers: Metadata,
  signal: AbortSignal,
  deadline: number | undefined,
  serializer: SerializerName,
  peer: string | undefined,
  ctx: ServerHandlerContext,
  input: unknown,
): ServerCall {
  return method.kind === "unary" || method.kind === "oneway"
    ? {
        method,
        side: "server",
        headers,
        signal,
        deadline,
        serializer,
        peer,
        [kContext]: ctx,
        stream: false,
        message: input,
      }
    : {
        method,
        side: "server",
        headers,
        signal,
        deadline,
        serializer,
        peer,
        [kContext]: ctx,
        stream: true,
        messages: input as AsyncIterable<unknown>,
      };
}

/** Runs a route's interceptor chain and handler inside the call context. */
export function invokeRoute(
  route: RegisteredMethod,
  call: ServerCall,
  context: CallContext,
): Promise<CallResult> {
  try {
    return runWithCallContext(context, route.handler, call);
  } catch (e) {
    return Promise.reject(e);
  }
}
