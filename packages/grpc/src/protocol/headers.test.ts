import { defineService, Metadata, type MethodInfo, messageType, rawBytes, unary } from "@weft/core";
import { RESERVED_HTTP_HEADERS } from "@weft/core/internal";
import { describe, expect, it } from "vitest";
import {
  grpcContentType,
  grpcSubtype,
  isReservedKey,
  metadataFromHeaders,
  metadataFromRaw,
  serializerFor,
  writeMetadata,
} from "./headers.ts";

function methodOf(service: ReturnType<typeof defineService>): MethodInfo {
  const [name, def] = Object.entries(service.methods)[0]!;
  return {
    service,
    name,
    path: `/${service.typeName}/${name}`,
    kind: def.kind,
    input: def.input,
    output: def.output,
    idempotent: false,
    proto: undefined,
  };
}

describe("content types", () => {
  it("reads the gRPC subtype, and nothing else as gRPC", () => {
    expect(grpcSubtype("application/grpc")).toBe("");
    expect(grpcSubtype("application/grpc+proto")).toBe("proto");
    expect(grpcSubtype("application/grpc+JSON; charset=utf-8")).toBe("json");
    expect(grpcSubtype("application/grpc;foo=bar")).toBe("");
    for (const ct of [
      undefined,
      "application/json",
      "application/grpc-web",
      "application/grpc-web+proto",
      "application/grpcx",
    ]) {
      expect(grpcSubtype(ct)).toBeUndefined();
    }
  });

  it("maps subtypes to a serializer the method supports", () => {
    const raw = methodOf(defineService("t.Raw", { echo: unary(rawBytes, rawBytes) }));
    const json = methodOf(
      defineService("t.Json", { echo: unary(messageType<{ a: 1 }>(), messageType<{ a: 1 }>()) }),
    );
    expect(serializerFor(raw, "")).toBe("raw");
    expect(serializerFor(raw, "proto")).toBe("raw");
    expect(serializerFor(raw, "json")).toBeUndefined();
    expect(serializerFor(json, "json")).toBe("json");
    expect(serializerFor(json, "msgpack")).toBe("msgpack");
    expect(serializerFor(json, "")).toBeUndefined();
    expect(grpcContentType("protobuf")).toBe("application/grpc");
    expect(grpcContentType("json")).toBe("application/grpc+json");
  });
});

describe("metadata", () => {
  it("keeps application headers and drops protocol ones, from objects and raw lists alike", () => {
    const headers = {
      ":path": "/a/b",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "1S",
      "user-agent": "x",
      "x-a": "1",
      "x-b-bin": "AAE=",
      "x-multi": ["1", "2"],
    };
    expect(metadataFromHeaders(headers).toJSON()).toEqual({
      "user-agent": "x",
      "x-a": "1",
      "x-b-bin": "AAE=",
      "x-multi": "1, 2",
    });
    const raw = Object.entries(headers).flatMap(([k, v]) =>
      Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, v],
    );
    expect(metadataFromRaw(raw).toJSON()).toEqual({
      "user-agent": "x",
      "x-a": "1",
      "x-b-bin": "AAE=",
      "x-multi": "1, 2",
    });
  });

  it("never writes reserved keys from metadata", () => {
    for (const k of ["grpc-status", "content-type", "connection", "te", "connect-timeout-ms"])
      expect(isReservedKey(k)).toBe(true);
    const out: Record<string, string> = {};
    writeMetadata(new Metadata({ "grpc-status": "0", "x-ok": "1", connection: "close" }), out);
    expect(out).toEqual({ "x-ok": "1" });
  });

  it("is core's mapping, shared with Connect and REST; values HTTP cannot carry are skipped", () => {
    for (const k of RESERVED_HTTP_HEADERS) expect(isReservedKey(k)).toBe(true);
    expect(metadataFromHeaders({ accept: "*/*", "x-a": "1" }).toJSON()).toEqual({ "x-a": "1" });
    expect(metadataFromRaw(["accept", "*/*", "x-a", "1"]).toJSON()).toEqual({ "x-a": "1" });
    const out: Record<string, string> = {};
    writeMetadata(new Metadata({ "x-ok": "1", "x-bad": "line\nbreak", "x-wide": "€" }), out);
    expect(out).toEqual({ "x-ok": "1" });
  });
});
