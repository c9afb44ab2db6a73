import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  type Code as ConnectCode,
  type HandlerContext as ConnectContext,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  createContextValues,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
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
  type CallDoor,
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
  WEFT_DOMAIN,
} from "../protocol/status.ts";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface ConnectBridgeOptions {
  /** Where the server's calls are opened. */
  door: CallDoor;
  grpcWeb: boolean;
  connect: boolean;
  maxMessageBytes: number;
  whileDraining: (path: string) => boolean;
}

const kPeer = createContextKey<string | undefined>(undefined, { description: "weft peer" });
const kPeerIdentity = createContextKey<PeerIdentity | undefined>(undefined, {
  description: "weft peer identity",
});

/**
 * gRPC-web and Connect through `@connectrpc/connect-node`: every method of the server that has a
 * protobuf descriptor is registered on a Connect router as a handler that opens its call through
 * the Weft server's door, so Weft's interceptors, deadline, call context and shutdown tracking apply
 * exactly as they do over Weft's own protocol and over gRPC.
 */
export function createConnectBridge(server: Server, options: ConnectBridgeOptions): NodeHandler {
  const adapter = connectNodeAdapter({
    grpc: false,
    grpcWeb: options.grpcWeb,
    connect: options.connect,
    readMaxBytes: options.maxMessageBytes,
    routes(router: ConnectRouter) {
      for (const info of server.methods.values()) {
        if (info.proto !== undefined) registerMethod(router, info, info.proto, options);
      }
    },
    fallback: (req, res) => unimplemented(req, res as unknown as NodeResponse),
    contextValues: (req) =>
      createContextValues()
        .set(kPeer, peerOf(req.socket))
        .set(kPeerIdentity, peerIdentityOf(req.socket as PeerTlsSocket)),
  });
  return adapter as NodeHandler;
}

function registerMethod(
  router: ConnectRouter,
  info: MethodInfo,
  desc: DescMethod,
  options: ConnectBridgeOptions,
): void {
  const open = (ctx: ConnectContext): OpenCall => {
    try {
      return openCall(options.door, {
        path: info.path,
        headers: metadataFromFetch(ctx.requestHeader),
        timeoutMs: ctx.timeoutMs(),
        serializer: (ctx.requestHeader.get("content-type") ?? "").includes("json") ? "json" : "protobuf",
        peer: ctx.values.get(kPeer),
        peerIdentity: ctx.values.get(kPeerIdentity),
        whileDraining: options.whileDraining(info.path),
      });
    } catch (e) {
      throw toConnectError(WeftError.from(e), undefined);
    }
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
        const unlink = link(ctx.signal, ext);
        try {
          const result = (await settleWithin(ext.run(request), ext.signal, undefined)) as UnaryResult;
          copyHeaders(result.headers, ctx.responseHeader);
          copyHeaders(result.trailers, ctx.responseTrailer);
          return result.message ?? {};
        } catch (e) {
          throw failure(ext, e);
        } finally {
          unlink();
          ext.finish();
        }
      });
      return;
    case "server_streaming":
    case "bidi_streaming": {
      const single = info.kind === "server_streaming";
      rpc(desc, async function* (input: unknown, ctx: ConnectContext) {
        const ext = open(ctx);
        const unlink = link(ctx.signal, ext);
        let iterator: AsyncIterator<unknown> | undefined;
        let finished = false;
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
            yield next.value;
          }
          finished = true;
          copyHeaders(result.trailers, ctx.responseTrailer);
        } catch (e) {
          finished = true;
          throw failure(ext, e);
        } finally {
          unlink();
          ext.finish();
          // the client went away mid-stream: stop the handler's generator
          if (!finished) void iterator?.return?.()?.catch(() => {});
        }
      });
      return;
    }
  }
}

/** Connect's context signal aborts when the client goes away or its deadline passes: cancel the Weft call. */
function link(signal: AbortSignal, ext: OpenCall): () => void {
  const onAbort = () => {
    const reason = signal.reason;
    const code = reason instanceof ConnectError ? (reason.code as number) : Code.CANCELLED;
    ext.cancel(
      new WeftError(
        code === Code.DEADLINE_EXCEEDED ? Code.DEADLINE_EXCEEDED : Code.CANCELLED,
        "call cancelled",
        {
          reason: code === Code.DEADLINE_EXCEEDED ? Reason.DEADLINE_EXCEEDED : Reason.CANCELLED,
        },
      ),
    );
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
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
