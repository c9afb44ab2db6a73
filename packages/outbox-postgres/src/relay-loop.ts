/*
 * What both relays share: their checked options, and the loop that runs their rounds with the one
 * retry backoff and the pause between rounds that `stop()` cuts short.
 */
import { CONSOLE_LOGGER, ConfigError, type Logger, type Telemetry } from "@weft/core";
import {
  type BackoffOptions,
  backoffDelay,
  loggerOption,
  numberOption,
  pause,
  telemetryOption,
} from "@weft/core/internal";
import type { Broker } from "@weft/messaging";

/** Options both relays take. */
export interface RelayOptions {
  /** Where messages go: any Weft broker (`natsBroker(…)`, `memoryBroker()`, …). */
  readonly broker: Broker;
  /** The schema of the tables (`migrate`'s); default `public`. */
  readonly schema?: string;
  /**
   * The relay's name, for leader election (relays of one name elect one leader), telemetry and logs.
   * Default `weft-outbox`.
   */
  readonly name?: string;
  /** How long one broker publish may take before it counts as failed, in ms. Default 10,000. */
  readonly publishTimeoutMs?: number;
  /** Waits after a failed round (the broker or the database down): core's backoff, default 100 ms doubling to 10 s. */
  readonly backoff?: Partial<BackoffOptions>;
  /**
   * How long published rows are kept before the retention job deletes them, in ms; default one day
   * (86,400,000). The job runs every `retentionIntervalMs` (default 60,000) on the leader.
   */
  readonly retentionMs?: number;
  readonly retentionIntervalMs?: number;
  /**
   * How often the relay reports its lag as a telemetry event (`outbox.lag` for the polling relay,
   * `outbox.slot_lag` for the log-tailing one), in ms, when it has `telemetry`. Default 10,000.
   */
  readonly lagIntervalMs?: number;
  readonly telemetry?: Telemetry;
  readonly logger?: Logger;
}

/** The options of `RelayOptions`, checked, with defaults. */
export interface RelaySettings {
  readonly broker: Broker;
  readonly name: string;
  readonly publishTimeoutMs: number;
  readonly backoff: BackoffOptions;
  readonly retentionMs: number;
  readonly retentionIntervalMs: number;
  readonly lagIntervalMs: number;
  readonly telemetry: Telemetry | undefined;
  readonly logger: Logger;
}

/** Checks `RelayOptions`; throws a `ConfigError` naming the first bad option. */
export function relaySettings(options: RelayOptions): RelaySettings {
  const broker = options.broker as Broker | undefined;
  if (typeof broker?.publish !== "function") throw new ConfigError("broker", "a Broker", broker);
  const name = options.name ?? "weft-outbox";
  if (typeof name !== "string" || name === "") throw new ConfigError("name", "a non-empty string", name);
  const initialDelayMs = numberOption("backoff.initialDelayMs", options.backoff?.initialDelayMs, 100, 1);
  return {
    broker,
    name,
    publishTimeoutMs: numberOption("publishTimeoutMs", options.publishTimeoutMs, 10_000, 1),
    backoff: {
      initialDelayMs,
      maxDelayMs: Math.max(
        initialDelayMs,
        numberOption("backoff.maxDelayMs", options.backoff?.maxDelayMs, 10_000, 1),
      ),
    },
    retentionMs: numberOption("retentionMs", options.retentionMs, 86_400_000, 0),
    retentionIntervalMs: numberOption("retentionIntervalMs", options.retentionIntervalMs, 60_000, 1),
    lagIntervalMs: numberOption("lagIntervalMs", options.lagIntervalMs, 10_000, 1),
    telemetry: telemetryOption(options.telemetry),
    logger: loggerOption("logger", options.logger, CONSOLE_LOGGER),
  };
}

/** Error text for a log line or a row's `last_error`. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The life of a relay, and its one retry loop, once for both: `round` runs again and again until
 * `stop`, each round resolving with the pause before the next (ms). A round that rejects is logged
 * and the next one waits core's backoff, which grows with the failures since the last progress: a
 * round calls `progressed` when it moved messages forward (the polling relay after each round it
 * completed, the log-tailing relay whenever a session confirmed a commit), so a run of rounds that
 * fail without getting anywhere backs off all the way to `maxDelayMs`.
 */
export class RoundLoop {
  readonly #stopping = new AbortController();
  readonly #settings: RelaySettings;
  readonly #round: (signal: AbortSignal, progressed: () => void) => Promise<number>;
  #loop: Promise<void> | undefined;
  #failures = 0;
  readonly #progressed = (): void => {
    this.#failures = 0;
  };

  constructor(
    settings: RelaySettings,
    round: (signal: AbortSignal, progressed: () => void) => Promise<number>,
  ) {
    this.#settings = settings;
    this.#round = round;
  }

  /** Aborted by `stop`. */
  get signal(): AbortSignal {
    return this.#stopping.signal;
  }

  start(): void {
    if (this.#loop === undefined && !this.signal.aborted) this.#loop = this.#run();
  }

  /** Stops after the round running; resolves when it has finished. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.signal;
    while (!signal.aborted) {
      let wait: number;
      try {
        wait = await this.#round(signal, this.#progressed);
      } catch (error) {
        if (signal.aborted) break;
        this.#failures++;
        wait = backoffDelay(this.#failures, this.#settings.backoff);
        this.#settings.logger.warn(
          { err: error, relay: this.#settings.name, retryInMs: Math.round(wait) },
          "outbox relay: a round failed",
        );
      }
      if (wait > 0) await pause(wait, signal);
    }
  }
}
