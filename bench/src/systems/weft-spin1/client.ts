import { createTcpTransport, type Interceptor } from "@weft/core";
import type { BenchClient } from "../../types.ts";
import { echoClient } from "../weft/client.ts";

/** CPU the interceptor burns per call, in ms (1 µs). */
const SPIN_MS = 0.001;

/** Burns `SPIN_MS` of CPU on the caller's turn, then passes the call on: work of a known cost. */
const spin: Interceptor = (next) => (call) => {
  const until = performance.now() + SPIN_MS;
  while (performance.now() < until) {
    // known work, nothing else
  }
  return next(call);
};

/**
 * The calibration of the client CPU ratios: the `weft` client with one interceptor that burns 1 µs
 * of CPU per call, against the same `weft` server. Its client CPU per call minus `weft`'s is what
 * 1 µs of added work reads as in this closed loop on this machine (more than 1 µs where a slower
 * round trip makes every socket write and wake-up dearer), so another row's added CPU can be read
 * as µs of plain work.
 */
export function connectClient(port: number, payloadBytes: number): Promise<BenchClient> {
  return Promise.resolve(
    echoClient(createTcpTransport({ address: `127.0.0.1:${port}` }), payloadBytes, { interceptors: [spin] }),
  );
}
