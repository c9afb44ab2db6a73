import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import {
  Code,
  createServer,
  type Interceptor,
  Metadata,
  protoService,
  type Server,
  type ServerOptions,
  type ServiceImpl,
  WeftError,
} from "@weft/core";
import { Catalog, LookupRequestSchema } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { type GrpcListener, listenGrpc } from "../../src/index.ts";

export const root = fileURLToPath(new URL("../../../../", import.meta.url));
export const CatalogService = protoService(Catalog);

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}

/** A promise with its resolve function, for waiting on events without sleeping. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** What the catalog implementation observed, for assertions. */
export interface Observed {
  /** Resolved with the abort reason when a `slow` lookup's signal aborts. */
  slowAborted: Deferred<unknown>;
  /** Resolved when a `slow` lookup starts. */
  slowStarted: Deferred<void>;
  /** Lookups that ran, by SKU. */
  lookups: string[];
  /** Resolved when the endless price feed has sent its first tick. */
  feedStarted: Deferred<void>;
  /** Releases the `hold` price feed (ticks = -1) so it completes. */
  releaseFeed: Deferred<void>;
}

export const BYTES_DETAIL = toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "missing" }));

/** The example catalog over protobuf, with hooks for the interop tests. */
export function catalogImpl(observed: Observed): ServiceImpl<typeof CatalogService> {
  return {
    lookup({ sku }, ctx) {
      observed.lookups.push(sku);
      const echo = ctx.requestHeaders.get("x-echo");
      if (echo !== undefined) {
        ctx.responseHeaders.set("x-echo", echo);
        ctx.responseTrailers.set("x-echo-trailer", echo);
      }
      const bin = ctx.requestHeaders.get("x-blob-bin");
      if (bin !== undefined) ctx.responseHeaders.set("x-blob-bin", bin);
      if (sku === "missing") {
        ctx.responseTrailers.set("x-trailer-on-error", "yes");
        throw new WeftError(Code.NOT_FOUND, "no item missing — ünïcode 100%", {
          reason: "ITEM_NOT_FOUND",
          metadata: { "x-hint": "try A-100" },
          details: [
            { type: "catalog.v1.LookupRequest", value: BYTES_DETAIL },
            { type: "catalog.v1.Missing", value: { sku } },
          ],
        });
      }
      if (sku === "boom") throw new Error("secret internal detail");
      if (sku === "slow") {
        observed.slowStarted.resolve();
        return new Promise<never>((_, reject) => {
          ctx.signal.addEventListener("abort", () => {
            observed.slowAborted.resolve(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        });
      }
      return { sku, name: `item ${sku}`, priceCents: 1250n };
    },
    listItems: () => ({ items: [{ sku: "A-100", name: "Loom shuttle", priceCents: 1250n }] }),
    putItem: (req) => req.item ?? { sku: "", name: "", priceCents: 0n },
    async *watchPrices({ sku, ticks }, ctx) {
      ctx.responseHeaders.set("x-feed", sku);
      if (ticks < 0) {
        yield { sku, seq: 1, priceCents: 100n };
        observed.feedStarted.resolve();
        await observed.releaseFeed.promise;
        yield { sku, seq: 2, priceCents: 200n };
        return;
      }
      for (let seq = 1; seq <= ticks; seq++) yield { sku, seq, priceCents: BigInt(1000 + seq) };
      ctx.responseTrailers.set("x-ticks", String(ticks));
    },
    async importItems(items) {
      let imported = 0;
      for await (const _ of items) imported++;
      return { imported };
    },
    async *quote(requests) {
      for await (const { sku, quantity } of requests) {
        yield { sku, quantity, totalCents: BigInt(quantity * 1250) };
      }
    },
    audit: () => ({}),
  };
}

export function newObserved(): Observed {
  return {
    slowAborted: deferred<unknown>(),
    slowStarted: deferred(),
    lookups: [],
    feedStarted: deferred(),
    releaseFeed: deferred(),
  };
}

/** What a recording interceptor saw of one call. */
export interface Seen {
  path: string;
  side: string;
  serializer: string;
  header: string | undefined;
  hasDeadline: boolean;
}

/** A server interceptor that records every call and stamps `x-intercepted` on the response. */
export function recordingInterceptor(seen: Seen[]): Interceptor {
  return (next) => async (call) => {
    seen.push({
      path: call.method.path,
      side: call.side,
      serializer: call.serializer,
      header: call.headers.get("x-test"),
      hasDeadline: call.deadline !== undefined,
    });
    const result = await next(call);
    result.headers.set("x-intercepted", "1");
    return result;
  };
}

export interface Harness {
  server: Server;
  grpc: GrpcListener;
  observed: Observed;
  seen: Seen[];
  address: string;
  close(): Promise<void>;
}

/** A Weft server with the catalog and a recording interceptor, served over gRPC on a free port. */
export async function startCatalog(options: ServerOptions = {}): Promise<Harness> {
  const seen: Seen[] = [];
  const observed = newObserved();
  const server = createServer({
    onError: () => {},
    ...options,
    interceptors: [recordingInterceptor(seen), ...(options.interceptors ?? [])],
  });
  server.register(CatalogService, catalogImpl(observed));
  const listener = await listenGrpc(server);
  return {
    server,
    grpc: listener,
    observed,
    seen,
    address: `127.0.0.1:${listener.port}`,
    close: async () => {
      observed.releaseFeed.resolve();
      await server.shutdown({ timeoutMs: 1000 });
      await listener.close();
    },
  };
}

/** The catalog package loaded at run time from the `.proto`, as a grpc-js user would. */
export function loadCatalogPackage(): grpc.GrpcObject {
  const def = loader.loadSync("catalog/v1/catalog.proto", {
    includeDirs: [`${root}proto`, `${root}examples/catalog/proto`],
    longs: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(def);
}

// biome-ignore lint/suspicious/noExplicitAny: grpc-js clients built from proto-loader are untyped
export type AnyClient = any;

export function catalogClient(address: string): AnyClient {
  const pkg = loadCatalogPackage() as AnyClient;
  return new pkg.catalog.v1.Catalog(address, grpc.credentials.createInsecure());
}

/** A unary grpc-js call as a promise, with the response metadata and status. */
export function unaryCall<T>(
  client: AnyClient,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<{ response: T; headers: grpc.Metadata; trailers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    let trailers = new grpc.Metadata();
    const call = client[method](
      request,
      metadata,
      options,
      (error: grpc.ServiceError | null, response: T) => {
        if (error !== null) reject(error);
        else queueMicrotask(() => resolve({ response, headers, trailers }));
      },
    );
    call.on("metadata", (m: grpc.Metadata) => {
      headers = m;
    });
    call.on("status", (s: grpc.StatusObject) => {
      trailers = s.metadata;
    });
  });
}

export function grpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: grpc.ServiceError) => e,
  );
}

/** The frames of a gRPC-web body: messages, and the trailers frame parsed into a map. */
export function webFrames(body: Buffer): { messages: Buffer[]; trailers: Map<string, string> } {
  const messages: Buffer[] = [];
  const trailers = new Map<string, string>();
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at]!;
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if ((flags & 0x80) === 0) {
      messages.push(payload);
      continue;
    }
    for (const line of payload.toString("latin1").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  return { messages, trailers };
}

/** Base64 text made of runs that may each end in padding, decoded run by run as the grpc-web client does. */
export function fromRuns(text: string): Buffer {
  const bytes: Buffer[] = [];
  for (const run of text.match(/[A-Za-z0-9+/]*(?:==|=)?/g) ?? [])
    if (run !== "") bytes.push(Buffer.from(run, "base64"));
  return Buffer.concat(bytes);
}

export { Metadata };
