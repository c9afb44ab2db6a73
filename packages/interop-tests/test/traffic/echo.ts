/**
 * The service the fault tests call: one idempotent unary echo whose answer names the instance that
 * served it, so the load driver counts traffic per instance.
 */
import { defineService, messageType, unary } from "@weft/core";

/** `traffic.v1.Echo`: `echo({ n })` answers `{ n, id }`, `id` being the serving instance's. */
export const TrafficEcho = defineService("traffic.v1.Echo", {
  echo: unary(messageType<{ n: number }>(), messageType<{ n: number; id: string }>(), { idempotent: true }),
});

/** Where an echo server registers: an etcd endpoint (and key prefix) or a local registry's directory. */
export type RegistryArg =
  | { readonly kind: "etcd"; readonly endpoint: string; readonly prefix: string }
  | { readonly kind: "local"; readonly directory: string };

/** The one argument of `echo-server.ts`, as JSON. */
export interface EchoServerArgs {
  /** The instance id it registers with, and answers with. */
  readonly id: string;
  readonly registry: RegistryArg;
  /** TTL of its registration, in milliseconds. */
  readonly ttlMs: number;
  /** Also serve gRPC (`listenGrpc`) and advertise it. */
  readonly grpc: boolean;
  /** The handler's latency at start, in milliseconds (0: answers in the same turn). */
  readonly latencyMs: number;
}
