/**
 * A real browser on one origin calls Connect and gRPC-web on another: Chromium sends its CORS
 * preflights and enforces the answers, so this is what a web app sees. The page is served from one
 * port, the Weft server's gRPC endpoint listens on another (a different origin), and a second
 * endpoint without `cors` shows that the browser does block what CORS does not allow.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, createServer, type Interceptor } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ItemSchema,
  LookupRequestSchema,
} from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { type GrpcListener, listenGrpc } from "../../src/index.ts";
import { encodeEnvelope } from "../../src/protocol/envelope.ts";
import { CatalogService, catalogImpl, fromRuns, newObserved, webFrames } from "../e2e/fixtures.ts";
import { type Browser, ensureChromium, launchChromium } from "./chromium.ts";

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/** The page's script: each call's outcome, as plain JSON for the test to check. */
function pageScript(api: string, closed: string, lookupText: string, missingBinary: string): string {
  return `
const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const toB64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const lookup = "/catalog.v1.Catalog/Lookup";
window.results = (async () => {
  const out = {};
  const connect = await fetch(${JSON.stringify(api)} + lookup, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "connect-protocol-version": "1",
      "connect-timeout-ms": "10000",
      traceparent: ${JSON.stringify(TRACEPARENT)},
      "x-echo": "from-the-page",
    },
    body: JSON.stringify({ sku: "B-1" }),
  });
  out.connect = { status: connect.status, body: await connect.json(), echo: connect.headers.get("x-echo") };

  const text = await fetch(${JSON.stringify(api)} + lookup, {
    method: "POST",
    headers: {
      "content-type": "application/grpc-web-text",
      accept: "application/grpc-web-text",
      "x-grpc-web": "1",
      "x-user-agent": "grpc-web-javascript/0.1",
      "grpc-timeout": "10S",
      traceparent: ${JSON.stringify(TRACEPARENT)},
    },
    body: ${JSON.stringify(lookupText)},
  });
  out.webText = { status: text.status, type: text.headers.get("content-type"), body: await text.text() };

  const failed = await fetch(${JSON.stringify(api)} + lookup, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    body: fromB64(${JSON.stringify(missingBinary)}),
  });
  out.webError = { status: failed.status, body: toB64(await failed.arrayBuffer()) };

  // a trailers-only answer: the status is in headers the page can read only if they are exposed
  const unknown = await fetch(${JSON.stringify(api)} + "/catalog.v1.Catalog/NoSuchMethod", {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    body: fromB64(${JSON.stringify(missingBinary)}),
  });
  out.trailersOnly = { grpcStatus: unknown.headers.get("grpc-status"), grpcMessage: unknown.headers.get("grpc-message") };

  try {
    await fetch(${JSON.stringify(closed)} + lookup, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: JSON.stringify({ sku: "B-2" }),
    });
    out.withoutCors = "answered";
  } catch (e) {
    out.withoutCors = String(e.name);
  }
  return out;
})();
`;
}

describe("a browser page on another origin calls Connect and gRPC-web (headless Chromium)", () => {
  const traceparents: (string | undefined)[] = [];
  const capture: Interceptor = (next) => (call) => {
    traceparents.push(call.headers.get("traceparent"));
    return next(call);
  };
  const server = createServer({ onError: () => {}, interceptors: [capture] });
  server.register(CatalogService, catalogImpl(newObserved()));
  let api: GrpcListener;
  let closed: GrpcListener;
  let page: HttpServer;
  let pageOrigin: string;
  let browser: Browser;

  beforeAll(async () => {
    ensureChromium();
    page = createHttpServer();
    await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
    pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    api = await listenGrpc(server, {
      cors: {
        allowOrigins: [pageOrigin],
        exposeHeaders: ["x-echo"],
        allowHeaders: ["traceparent", "x-echo"],
      },
    });
    closed = await listenGrpc(server);
    const lookupText = encodeEnvelope(
      toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "T-1" })),
    ).toString("base64");
    const missing = encodeEnvelope(
      toBinary(LookupRequestSchema, create(LookupRequestSchema, { sku: "missing" })),
    ).toString("base64");
    const html = `<!doctype html><html><head><script>${pageScript(
      `http://127.0.0.1:${api.port}`,
      `http://127.0.0.1:${closed.port}`,
      lookupText,
      missing,
    )}</script></head><body>weft</body></html>`;
    page.on("request", (_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(html);
    });
    browser = await launchChromium();
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => page?.close(resolve));
    await server.shutdown({ timeoutMs: 1000 });
    await api?.close();
    await closed?.close();
  });

  it("Connect JSON, gRPC-web text and a gRPC-web error all reach the page; without cors the browser blocks", async () => {
    const out = (await browser.evaluateAt(`${pageOrigin}/`, "window.results")) as {
      connect: { status: number; body: Record<string, unknown>; echo: string | null };
      webText: { status: number; type: string; body: string };
      webError: { status: number; body: string };
      trailersOnly: { grpcStatus: string | null; grpcMessage: string | null };
      withoutCors: string;
    };

    // Connect: a preflighted call (JSON, traceparent, a custom header), its answer and an exposed header
    expect(out.connect.status).toBe(200);
    expect(out.connect.body).toMatchObject({ sku: "B-1", name: "item B-1" });
    expect(out.connect.echo).toBe("from-the-page");

    // gRPC-web text, as the official grpc-web client sends it by default
    expect(out.webText.status).toBe(200);
    expect(out.webText.type).toBe("application/grpc-web-text+proto");
    const frames = webFrames(fromRuns(out.webText.body));
    expect(frames.trailers.get("grpc-status")).toBe("0");
    expect(fromBinary(ItemSchema, frames.messages[0]!).sku).toBe("T-1");

    // an error in the trailers frame, with its reason and details
    expect(out.webError.status).toBe(200);
    const error = webFrames(Buffer.from(out.webError.body, "base64")).trailers;
    expect(error.get("grpc-status")).toBe(String(Code.NOT_FOUND));
    expect(error.get("grpc-status-details-bin")).toBeTruthy();
    // a trailers-only error: grpc-status and grpc-message are exposed to the page
    expect(out.trailersOnly.grpcStatus).toBe(String(Code.UNIMPLEMENTED));
    expect(out.trailersOnly.grpcMessage).toContain("NoSuchMethod");

    // the endpoint without cors: the browser refuses the cross-origin call
    expect(out.withoutCors).toBe("TypeError");

    // the trace context crossed the preflight to the handler
    expect(traceparents.filter((t) => t === TRACEPARENT)).toHaveLength(2);
  });
});
