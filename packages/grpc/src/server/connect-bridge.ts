import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethod,
  isMessage,
  type MessageInitShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import {
  type Code as ConnectCode,
  Code as ConnectCodeEnum,
  type HandlerContext as ConnectContext,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  createContextKey,
  createContextValues,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import {
  Code,
  type Metadata,
  type MethodInfo,
  type PeerIdentity,
  Reason,
  type Server,
  type StreamResult,
  type UnaryResult,
  WeftError,
} from "@weft/core";
import {
  abortError,
  type CallDoor,
  deadlineAfter,
  httpHeadersFromMetadata,
  metadataFromHttpHeaders,
  type OpenCall,
  openCall,
  type PeerTlsSocket,
  peerIdentityOf,
  peerOf,
  settleWithin,
  singleMessage,
} from "@weft/core/internal";
import {
  ERROR_INFO_TYPE,
  encodeErrorInfo,
  encodeGrpcMessage,
  encodeJsonDetails,
  JSON_DETAILS_KEY,
  parseGrpcTimeout,
  WEFT_DOMAIN,
} from "../protocol/status.ts";
import { binaryWebType, decodeWebText, encodeWebText, isWebText, textWebType } from "../protocol/web-text.ts";
import { BodyBytes } from "./body-bytes.ts";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;
type NodeServerResponse = Parameters<typeof universalResponseToNodeResponse>[1];

export interface ConnectBridgeOptions {
  /** Where the server's calls are opened. */
  door: CallDoor;
  grpcWeb: boolean;
  connect: boolean;
  maxMessageBytes: number;
  whileDraining: (path: string) => boolean;
  /** Smallest response message Connect compresses (for clients that accept it); none: never. */
  compressMinBytes: number | undefined;
}

const kPeer = createContextKey<string | undefined>(undefined, { description: "weft peer" });
const kPeerIdentity = createContextKey<PeerIdentity | undefined>(undefined, {
  description: "weft peer identity",
});
/** The call's absolute deadline, read from its timeout header when the request arrived. */
const kDeadline = createContextKey<number | undefined>(undefined, { description: "weft deadline" });
/** The request's body bytes, counted from before its call is opened. */
const kBytes = createContextKey<BodyBytes | undefined>(undefined, { description: "weft body bytes" });
/** The Node request, whose connection (HTTP/1.1) or stream (HTTP/2) tells whether the client went away. */
const kRequest = createContextKey<NodeRequest | undefined>(undefined, { description: "weft node request" });

/**
 * gRPC-web and Connect through `@connectrpc/connect`'s router: every method of the server that has a
 * protobuf descriptor is registered on a Connect router as a handler that opens its call through
 * the Weft server's door, so Weft's interceptors, deadline, call context and shutdown tracking apply
 * exactly as they do over Weft's own protocol and over gRPC.
 *
 * Two things happen before Connect sees a request. Its timeout header (`connect-timeout-ms`,
 * `grpc-timeout`) is taken off and becomes the call's deadline at the door, so one timer ends the
 * call and a deadline always ends it as over gRPC (with both timers armed, Connect's fired first as
 * often as not and the call ended "cancelled"); a malformed one is left for Connect to refuse.
 * `application/grpc-web-text` is turned into binary gRPC-web and its answer back into base64.
 *
 * The request and response bodies are counted on their way in and out of Connect (`BodyBytes`):
 * the message bytes as they are on the wire, compressed, without frames or base64.
 */
export function createConnectBridge(server: Server, options: ConnectBridgeOptions): NodeHandler {
  const router = createConnectRouter({
    grpc: false,
    grpcWeb: options.grpcWeb,
    connect: options.connect,
    readMaxBytes: options.maxMessageBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    compressMinBytes: options.compressMinBytes ?? Number.POSITIVE_INFINITY,
  });
  for (const info of server.methods.values()) {
    if (info.proto !== undefined) registerMethod(router, info, info.proto, options);
  }
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, h);
  return (req, res) => {
    const handler = paths.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (handler === undefined) {
      unimplemented(req, res);
      return;
    }
    const bytes = new BodyBytes();
    const values = createContextValues()
      .set(kPeer, peerOf(req.socket))
      .set(kPeerIdentity, peerIdentityOf(req.socket as PeerTlsSocket))
      .set(kBytes, bytes)
      .set(kRequest, req);
    const out = res as NodeServerResponse;
    const uReq = universalRequestFromNodeRequest(req, out, undefined, values);
    const contentType = uReq.header.get("content-type") ?? "";
    const web = contentType.startsWith("application/grpc-web");
    values.set(kDeadline, takeDeadline(uReq.header, web ? "grpc-timeout" : "connect-timeout-ms"));
    const text = web && isWebText(contentType);
    // gRPC-web and Connect streaming bodies are frames; a unary Connect body is the message
    const enveloped = web || contentType.startsWith("application/connect+");
    let body = uReq.body as AsyncIterable<Uint8Array>;
    if (text) {
      uReq.header.set("content-type", binaryWebType(contentType));
      body = decodeWebText(body);
    }
    uReq.body = bytes.request(body, enveloped);
    if (uReq.method === "GET") bytes.received(getMessageBytes(uReq.url));
    handler(uReq)
      .then((uRes) => {
        // an error answers a unary Connect call with another status, and its body is no message
        if (bytes.opened && uRes.status === 200 && uRes.body !== undefined) {
          uRes = { ...uRes, body: bytes.response(uRes.body, enveloped) };
        }
        return universalResponseToNodeResponse(text ? toWebText(uRes) : uRes, out);
      })
      .catch((reason: unknown) => {
        // the client went away while the answer was written: nothing to tell anyone
        if (ConnectError.from(reason).code === ConnectCodeEnum.Aborted) return;
        if (!res.headersSent) {
          (res as ServerResponse).writeHead(500);
          res.end();
        } else {
          (res as ServerResponse).destroy();
        }
      });
  };
}

/**
 * Removes a well-formed timeout header and returns the deadline it sets (from now); leaves a
 * malformed one in place for Connect to refuse in the protocol's own way.
 */
function takeDeadline(header: Headers, name: "grpc-timeout" | "connect-timeout-ms"): number | undefined {
  const value = header.get(name);
  if (value === null) return undefined;
  const ms = name === "grpc-timeout" ? parseGrpcTimeout(value) : parseConnectTimeout(value);
  if (ms === undefined) return undefined;
  header.delete(name);
  return deadlineAfter(ms);
}

/** `connect-timeout-ms`: up to ten digits of milliseconds. */
function parseConnectTimeout(value: string): number | undefined {
  return /^\d{1,10}$/.test(value) ? Number(value) : undefined;
}

/**
 * The message bytes of a Connect GET, carried in its URL: the `message` parameter, decoded from
 * base64 (`base64=1`) or as the UTF-8 of its JSON, and compressed if `compression` says so.
 */
function getMessageBytes(url: string): number {
  const query = new URL(url).searchParams;
  const message = query.get("message");
  if (message === null) return 0;
  return Buffer.byteLength(message, query.get("base64") === "1" ? "base64" : "utf8");
}

/** A binary gRPC-web answer as gRPC-web text. */
function toWebText(uRes: UniversalServerResponse): UniversalServerResponse {
  const header = new Headers(uRes.header);
  const type = header.get("content-type");
  if (type !== null) header.set("content-type", textWebType(type));
  header.delete("content-length");
  return {
    ...uRes,
    header,
    ...(uRes.body === undefined ? {} : { body: encodeWebText(uRes.body) }),
  };
}

function registerMethod(
  router: ConnectRouter,
  info: MethodInfo,
  desc: DescMethod,
  options: ConnectBridgeOptions,
): void {
  const open = (ctx: ConnectContext): OpenCall => {
    let ext: OpenCall;
    try {
      ext = openCall(options.door, {
        path: info.path,
        // connect-node serves both: "connect" or "grpc-web"
        protocol:
          ctx.protocolName === "grpc-web" ? "grpc-web" : ctx.protocolName === "grpc" ? "grpc" : "connect",
        headers: metadataFromFetch(ctx.requestHeader),
        timeoutMs: budgetOf(ctx.values.get(kDeadline)),
        serializer: isJson(ctx) ? "json" : "protobuf",
        peer: ctx.values.get(kPeer),
        peerIdentity: ctx.values.get(kPeerIdentity),
        whileDraining: options.whileDraining(info.path),
      });
    } catch (e) {
      throw toConnectError(WeftError.from(e), undefined);
    }
    ctx.values.get(kBytes)?.open(ext);
    return ext;
  };
  // Implementations are typed loosely: the router checks them against the descriptor at run time.
  const rpc = router.rpc as (m: DescMethod, impl: unknown) => ConnectRouter;
  switch (info.kind) {
    case "unary":
    case "oneway":
    case "client_streaming":
      // one response message (the request of a client-streaming call is Connect's AsyncIterable)
      rpc(desc, async (request: unknown, ctx: ConnectContext) => {
        const ext = open(ctx);
        const unlink = link(ctx, ext, undefined, desc);
        let failed: unknown;
        try {
          const result = (await settleWithin(ext.run(request), ext.signal, undefined)) as UnaryResult;
          copyHeaders(result.headers, ctx.responseHeader);
          copyHeaders(result.trailers, ctx.responseTrailer);
          const message = result.message ?? {};
          // Connect encodes the message once this has returned, when the call has ended: a message
          // it cannot encode is the handler's fault, found here so that the call ends with it
          const unencodable = encodeError(desc.output, message, isJson(ctx));
          if (unencodable !== undefined) throw unencodable;
          return message;
        } catch (e) {
          failed = e;
          throw failure(ext, e);
        } finally {
          unlink();
          ext.finish(failed);
        }
      });
      return;
    case "server_streaming":
    case "bidi_streaming": {
      const single = info.kind === "server_streaming";
      rpc(desc, async function* (input: unknown, ctx: ConnectContext) {
        const ext = open(ctx);
        // the message Connect is encoding, compressing and writing while the generator waits at its `yield`
        const pending: Pending = { message: undefined, error: undefined };
        const unlink = link(ctx, ext, pending, desc);
        let iterator: AsyncIterator<unknown> | undefined;
        let finished = false;
        let failed: unknown;
        try {
          const result = (await settleWithin(
            ext.run(single ? singleMessage(input) : input),
            ext.signal,
            undefined,
          )) as StreamResult;
          copyHeaders(result.headers, ctx.responseHeader);
          const it = result.messages[Symbol.asyncIterator]();
          iterator = it;
          for (;;) {
            const next = await settleWithin(
              ext.within(() => it.next()),
              ext.signal,
              undefined,
            );
            if (next.done === true) break;
            pending.message = next.value;
            yield next.value;
            pending.message = undefined;
          }
          finished = true;
          copyHeaders(result.trailers, ctx.responseTrailer);
        } catch (e) {
          // a write that failed because the client went away is thrown in at the `yield`, once
          // connect-node has aborted the call: it ends CANCELLED, as over gRPC, not as a handler error
          failed = ext.signal.aborted ? abortError(ext.signal) : e;
          throw failure(ext, failed);
        } finally {
          unlink();
          if (pending.error !== undefined) {
            // Connect stopped the stream because the handler's message could not be encoded (it
            // sent INTERNAL) or compressed (it broke the stream off): a fault of the server's,
            // reported as such
            failed = pending.error;
            failure(ext, failed);
          }
          ext.finish(failed);
          // the call ended before the handler's stream did (the client went away, the deadline or
          // shutdown stopped it while a message was awaited): stop the handler's iterator
          if (!finished) void iterator?.return?.()?.catch(() => {});
        }
      });
      return;
    }
  }
}

/** The budget left of a deadline read on arrival (none: no deadline). */
function budgetOf(deadline: number | undefined): number | undefined {
  return deadline === undefined ? undefined : deadline - Date.now();
}

/** A streaming call's message on its way out through Connect, and why Connect could not send it. */
interface Pending {
  message: unknown;
  error: unknown;
}

/**
 * Connect's context signal aborts when the client goes away (the deadline is the door's, never
 * Connect's): cancel the Weft call as gRPC does when its stream closes early.
 *
 * It also aborts, with no reason that tells the two apart, when Connect stops a response stream
 * itself: the message the handler yielded could not be encoded, or its bytes not compressed. So an
 * abort while a streaming handler's message is on its way (`pending`) and the client is still
 * there (its connection, or its HTTP/2 stream, is open) encodes the message once more to tell
 * which, and keeps the failure in `pending.error` for the generator to end the call with; the call
 * is not taken for cancelled. Connect encodes a yielded message before any I/O can come in between,
 * so the abort for a message it could not encode sees the message as it was yielded. A client that
 * goes away while the message waits to be written, when the handler may have changed it since, is
 * a cancel without a second look.
 */
function link(
  ctx: ConnectContext,
  ext: OpenCall,
  pending: Pending | undefined,
  desc: DescMethod,
): () => void {
  const signal = ctx.signal;
  const req = ctx.values.get(kRequest);
  const onAbort = () => {
    if (pending?.message !== undefined && req !== undefined && !clientGone(req)) {
      pending.error = encodeError(desc.output, pending.message, isJson(ctx)) ?? notSent();
      return;
    }
    ext.cancel(new WeftError(Code.CANCELLED, "call cancelled by the client", { reason: Reason.CANCELLED }));
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/** Whether the client went away: its connection (HTTP/1.1) or its stream (HTTP/2) is gone. */
function clientGone(req: NodeRequest): boolean {
  return "stream" in req ? req.stream.destroyed : req.socket.destroyed;
}

/** Why Connect stopped a stream on a message it encoded, the client still there: its compression failed. */
function notSent(): Error {
  return new Error("connect-node failed to compress or write an encoded response message");
}

/**
 * Whether a call's messages are JSON (else protobuf binary), as its content type says, or for a
 * Connect GET, which has no body, its `encoding` parameter.
 */
function isJson(ctx: ConnectContext): boolean {
  if (ctx.requestMethod === "GET") return new URL(ctx.url).searchParams.get("encoding") === "json";
  return (ctx.requestHeader.get("content-type") ?? "").includes("json");
}

/** Why `value` cannot be encoded as a `schema` message as Connect encodes it (undefined: it can). */
function encodeError(schema: DescMessage, value: unknown, json: boolean): unknown {
  try {
    const message = isMessage(value, schema) ? value : create(schema, value as MessageInitShape<DescMessage>);
    if (json) toJson(schema, message);
    else toBinary(schema, message);
    return undefined;
  } catch (e) {
    return e;
  }
}

function failure(ext: OpenCall, reason: unknown): ConnectError {
  const error = ext.toWireError(reason);
  ext.cancel(error);
  return toConnectError(error, ext.handlerContext.responseTrailers);
}

/** A `WeftError` as Connect sends it: same code, reason as an `ErrorInfo` detail, bytes details as details. */
export function toConnectError(error: WeftError, trailers: Metadata | undefined): ConnectError {
  const headers = new Headers();
  if (trailers !== undefined) copyHeaders(trailers, headers);
  copyHeaders(error.metadata, headers);
  const json = encodeJsonDetails(error.details);
  if (json !== undefined) headers.set(JSON_DETAILS_KEY, json);
  const ce = new ConnectError(
    error.rawMessage,
    error.code as number as ConnectCode,
    headers,
    undefined,
    error,
  );
  for (const d of error.details)
    if (d.value instanceof Uint8Array) ce.details.push({ type: d.type, value: d.value });
  if (error.reason !== "")
    ce.details.push({ type: ERROR_INFO_TYPE, value: encodeErrorInfo(error.reason, WEFT_DOMAIN) });
  return ce;
}

/** The request metadata of a Connect call: core's mapping, as over gRPC and REST. */
function metadataFromFetch(headers: Headers): Metadata {
  return metadataFromHttpHeaders(Object.fromEntries(headers));
}

/** Metadata as response headers or trailers: core's mapping drops reserved keys and values HTTP cannot carry. */
function copyHeaders(md: Metadata, into: Headers): void {
  if (md.size === 0) return;
  const out = httpHeadersFromMetadata(md, Object.create(null) as Record<string, string>);
  for (const k in out) {
    try {
      into.set(k, out[k]!);
    } catch {
      // fetch's Headers is stricter in places (e.g. surrounding whitespace): drop, don't fail the call
    }
  }
}

/** Paths no Connect handler serves: UNIMPLEMENTED in the protocol the client spoke. */
function unimplemented(req: NodeRequest, res: NodeResponse): void {
  const contentType = String(req.headers["content-type"] ?? "");
  const path = (req.url ?? "").split("?", 1)[0] ?? "";
  const message = `unknown method ${path}`;
  if (contentType.startsWith("application/grpc-web")) {
    (res as ServerResponse).writeHead(200, {
      "content-type": contentType,
      "grpc-status": String(Code.UNIMPLEMENTED),
      "grpc-message": encodeGrpcMessage(message),
    });
    res.end();
    return;
  }
  (res as ServerResponse).writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message }));
}
