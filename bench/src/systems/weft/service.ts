import { defineService, rawBytes, serverStreaming, unary } from "@weft/core";

/** Bytes in, bytes out, like the grpc-js service: the bench measures the RPC stack, not a codec. */
export const Echo = defineService("bench.Echo", {
  echo: unary(rawBytes, rawBytes),
  stream: serverStreaming(rawBytes, rawBytes),
});
