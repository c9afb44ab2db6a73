/*
 * How Weft's own front ends (gRPC, Connect, REST) reach the internals of a server made by
 * `createServer`: a typed lookup, never a cast. The public `Server` interface stays as it is.
 */
import type { AdvertisedProtocol } from "../discovery/registry.ts";
import { ConfigError } from "../errors/weft-error.ts";
import type { Telemetry } from "../telemetry/telemetry.ts";
import type { CallDoor } from "./open-call.ts";

/** What a protocol front end needs of a Weft server beyond its public interface. */
export interface ServerInternals extends CallDoor {
  /** The server's error reporting: its `onError`, else its `logger`. */
  report(error: unknown, path: string | undefined): void;
  /** A front end listens on `address` for `protocol`: what `registerWith` advertises. */
  bound(protocol: AdvertisedProtocol, address: { host: string; port: number }): void;
  /** What readiness depends on, beyond the server's state (an admin endpoint's `/readyz`). */
  readonly readiness: ServerReadiness;
  /** The server's `telemetry` option: where front ends report their connections. */
  readonly telemetry: Telemetry | undefined;
}

/** Whether a server listens and how its registrations stand. */
export interface ServerReadiness {
  /** A front end (Weft TCP, gRPC, REST) listens. */
  readonly listening: boolean;
  /** `registerWith` calls under way. */
  readonly registering: number;
  /** `registerWith` calls that succeeded. */
  readonly registered: number;
}

const registry = new WeakMap<object, ServerInternals>();

/** Called once by `createServer` for the server it made. */
export function registerServerInternals(server: object, internals: ServerInternals): void {
  registry.set(server, internals);
}

/**
 * The internals of `server`. Throws a `ConfigError` for anything `createServer` did not make (a
 * look-alike object, a server from a second copy of `@weft/core`).
 */
export function serverInternals(server: unknown): ServerInternals {
  const internals = server !== null && typeof server === "object" ? registry.get(server) : undefined;
  if (internals === undefined) {
    throw new ConfigError("server", "a Weft Server (createServer(...))", server);
  }
  return internals;
}
