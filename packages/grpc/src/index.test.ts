import { describe, expect, it } from "vitest";
import * as api from "./index.ts";

describe("@weft/grpc's public surface", () => {
  it("is what users need: serving, the transport, health, reflection, and rich-error helpers for non-Weft peers", () => {
    expect(Object.keys(api).sort()).toEqual([
      "ERROR_INFO_TYPE",
      "HealthService",
      "JSON_DETAILS_KEY",
      "ReflectionService",
      "ReflectionV1AlphaService",
      "WEFT_DOMAIN",
      "addHealth",
      "addReflection",
      "createGrpcHandler",
      "createGrpcTransport",
      "createTransport",
      "decodeDetails",
      "decodeErrorInfo",
      "encodeStatusDetails",
      "listenGrpc",
    ]);
  });
});
