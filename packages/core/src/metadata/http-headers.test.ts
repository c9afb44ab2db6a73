import { describe, expect, it } from "vitest";
import { httpHeadersFromMetadata, metadataFromHttpHeaders } from "./http-headers.ts";
import { Metadata } from "./metadata.ts";

describe("HTTP headers and metadata", () => {
  it("keeps call headers and drops transport, framing, gRPC and Connect headers", () => {
    const md = metadataFromHttpHeaders({
      ":path": "/x",
      host: "a",
      "content-type": "application/grpc",
      "grpc-timeout": "5S",
      "connect-timeout-ms": "5",
      "x-tenant": "acme",
      traceparent: "00-abc-def-01",
      "x-multi": ["a", "b"],
      "user-agent": "curl",
    });
    expect(md.toJSON()).toEqual({
      "x-tenant": "acme",
      traceparent: "00-abc-def-01",
      "x-multi": "a, b",
      "user-agent": "curl",
    });
  });

  it("writes metadata as headers, with a prefix, skipping what HTTP cannot carry", () => {
    const md = new Metadata({ "x-a": "1", "content-type": "text/plain", "x-bad": "line\nbreak" });
    expect(httpHeadersFromMetadata(md, {}, "trailer-")).toEqual({ "trailer-x-a": "1" });
  });
});
