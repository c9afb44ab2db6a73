import type { Call, CallResult } from "../interceptor/call.ts";

/**
 * Carries a client's calls to a server. The Weft TCP transport, the in-memory transport, and later
 * gRPC and load-balanced transports all implement it; clients are built on any of them.
 */
export interface Transport {
  /** Sends a call; the innermost link of the client interceptor chain. */
  call(call: Call): Promise<CallResult>;
  /** Closes connections; calls in flight fail with UNAVAILABLE. */
  close(): Promise<void>;
}
