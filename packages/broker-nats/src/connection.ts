/*
 * What both NATS brokers share below the Broker interface: their connection options, checked once;
 * the connection itself (the NATS client reconnects by itself, so nothing here retries); and the one
 * error a broker that cannot be reached rejects with.
 */

import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  CONSOLE_LOGGER,
  Code,
  ConfigError,
  type Logger,
  Reason,
  type Telemetry,
  WeftError,
} from "@weft/core";
import { emit, loggerOption, positiveInteger, telemetryOption } from "@weft/core/internal";

/** How to reach the NATS servers; the options both `natsBroker` and `jetStreamBroker` take. */
export interface NatsConnectionOptions {
  /**
   * The NATS servers: `host:port` or `nats://host:port`, one or several (the client picks one and
   * fails over to the others). Required.
   */
  readonly servers: string | readonly string[];
  /** The connection's name, as the server's monitoring (`/connz`) shows it. Default `weft`. */
  readonly name?: string;
  /** User and password, when the server asks for them. */
  readonly user?: string;
  readonly pass?: string;
  /** An authentication token, when the server asks for one. */
  readonly token?: string;
  /**
   * How long the first connection may take, in ms; past it the factory rejects with `UNAVAILABLE`
   * (`BROKER_UNAVAILABLE`). Default 5,000. Later disconnects are reconnected by the NATS client,
   * forever, every `reconnectWaitMs`.
   */
  readonly connectTimeoutMs?: number;
  /** The wait between reconnect attempts, in ms (the NATS client adds its own jitter). Default 250. */
  readonly reconnectWaitMs?: number;
  /**
   * How long to wait for a confirmation from the server (a JetStream publish ack, an acknowledgement's
   * confirmation, a stream or consumer lookup), in ms; past it the operation rejects with
   * `UNAVAILABLE` (`BROKER_UNAVAILABLE`). Default 5,000.
   */
  readonly requestTimeoutMs?: number;
  /** Receives `broker.connection` (lost, back) and `broker.dropped` events. Default: none. */
  readonly telemetry?: Telemetry;
  /** Where the broker's few warnings go (a malformed message, a consumer it could not pull from). Default: core's `CONSOLE_LOGGER`. */
  readonly logger?: Logger;
}

/** The connection options, checked. */
export interface ConnectionSettings {
  readonly servers: string[];
  readonly name: string;
  readonly user: string | undefined;
  readonly pass: string | undefined;
  readonly token: string | undefined;
  readonly connectTimeoutMs: number;
  readonly reconnectWaitMs: number;
  readonly requestTimeoutMs: number;
  readonly telemetry: Telemetry | undefined;
  readonly logger: Logger;
}

/** Checks the connection options; throws `ConfigError` naming the first bad one. */
export function connectionSettings(options: NatsConnectionOptions): ConnectionSettings {
  if (typeof options !== "object" || options === null)
    throw new ConfigError("options", "an object with servers", options);
  const servers = typeof options.servers === "string" ? [options.servers] : options.servers;
  if (
    !Array.isArray(servers) ||
    servers.length === 0 ||
    !servers.every((s) => typeof s === "string" && s.trim() !== "")
  )
    throw new ConfigError(
      "servers",
      'a NATS server ("host:port") or a non-empty list of them',
      options.servers,
    );
  const text = (option: "name" | "user" | "pass" | "token"): string | undefined => {
    const v = options[option];
    if (v !== undefined && typeof v !== "string") throw new ConfigError(option, "a string", v);
    return v;
  };
  return {
    servers: [...servers],
    name: text("name") ?? "weft",
    user: text("user"),
    pass: text("pass"),
    token: text("token"),
    connectTimeoutMs: positiveInteger(
      "connectTimeoutMs",
      options.connectTimeoutMs ?? 5_000,
      "milliseconds > 0",
    ),
    reconnectWaitMs: positiveInteger("reconnectWaitMs", options.reconnectWaitMs ?? 250, "milliseconds > 0"),
    requestTimeoutMs: positiveInteger(
      "requestTimeoutMs",
      options.requestTimeoutMs ?? 5_000,
      "milliseconds > 0",
    ),
    telemetry: telemetryOption(options.telemetry),
    logger: loggerOption("logger", options.logger, CONSOLE_LOGGER),
  };
}

/**
 * Connects to NATS, reporting disconnects and reconnects as `broker.connection`. Rejects with
 * `UNAVAILABLE` (`BROKER_UNAVAILABLE`) when no server answers within `connectTimeoutMs`.
 */
export async function openConnection(broker: string, settings: ConnectionSettings): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: settings.servers,
      name: settings.name,
      timeout: settings.connectTimeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: settings.reconnectWaitMs,
      ...(settings.user === undefined ? {} : { user: settings.user }),
      ...(settings.pass === undefined ? {} : { pass: settings.pass }),
      ...(settings.token === undefined ? {} : { token: settings.token }),
    });
  } catch (error) {
    throw brokerUnavailable(broker, `connect to ${settings.servers.join(", ")}`, error);
  }
  const telemetry = settings.telemetry;
  if (telemetry !== undefined) void watchStatus(broker, nc, telemetry);
  return nc;
}

async function watchStatus(broker: string, nc: NatsConnection, telemetry: Telemetry): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === "disconnect")
      emit(telemetry, "broker.connection", { broker, status: "disconnected" });
    else if (status.type === "reconnect")
      emit(telemetry, "broker.connection", { broker, status: "reconnected" });
  }
}

/**
 * The error of an operation the broker could not do: `UNAVAILABLE`, reason `BROKER_UNAVAILABLE`,
 * naming the broker and what it tried (`publish to orders.placed`), with the NATS error as its cause.
 */
export function brokerUnavailable(broker: string, what: string, cause: unknown): WeftError {
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new WeftError(Code.UNAVAILABLE, `${broker}: could not ${what}${detail}`, {
    reason: Reason.BROKER_UNAVAILABLE,
    cause,
  });
}

/** The error of any operation on a broker after `close()`. */
export function brokerClosed(broker: string, what: string): WeftError {
  return new WeftError(Code.UNAVAILABLE, `${broker}: could not ${what}: the broker is closed`, {
    reason: Reason.BROKER_UNAVAILABLE,
  });
}
