import type { Call, CallResult } from "../interceptor/call.ts";

/**
 * Carries a client's calls to a server. The Weft TCP transport, the in-memory transport, and later
 * gRPC and load-balanced transports all implement it; clients are built on any of them.
 */
export interface Transport {
  /** Sends a call; the innermost link of the client interceptor chain. */
  call(call: Call): Promise<CallResult>;
  /**
   * Closes every connection, including one still being set up and those draining after a goaway;
   * calls in flight fail with UNAVAILABLE, and so do calls made afterwards. Resolves once the
   * connections are closed.
   */
  close(): Promise<void>;
}
