import { type Call, Metadata } from "@weft/core";

/** A unary client call of `method` as a client builds it: JSON, no headers, no deadline. */
export function clientCall(method: Call["method"]): Call {
  return {
    method,
    side: "client",
    stream: false,
    message: {},
    headers: new Metadata(),
    signal: new AbortController().signal,
    deadline: undefined,
    serializer: "json",
    peer: undefined,
    protocol: undefined,
  };
}
