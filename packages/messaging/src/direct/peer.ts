/*
 * Another process running a direct broker, as this one sees it: one Weft TCP transport to its
 * address, the subscriptions it advertises (followed over its `subscriptions` stream, re-opened with
 * core's backoff after a failure; an unreachable peer advertises nothing), and the deliveries sent
 * to it. A `TransportNode`, so core's `Membership` builds and retires peers as the registry reports
 * them.
 */
import {
  type CallOptions,
  type CallResult,
  type Client,
  createClient,
  createTcpTransport,
  type Instance,
  type Telemetry,
  type Transport,
  type UnaryCall,
} from "@weft/core";
import {
  armDeadline,
  type BackoffOptions,
  backoffDelay,
  type DeadlineTimer,
  emit,
  runOutsideCallContext,
} from "@weft/core/internal";
import type { Envelope } from "../envelope.ts";
import {
  type Acceptance,
  type AdvertisedSubscription,
  advertisedOf,
  DirectService,
  deliverRequest,
} from "./service.ts";

export interface PeerSettings {
  /** Follow the peer's subscriptions (false for a peer only replied to). */
  readonly follow: boolean;
  /** This process's `host:port`, as the peer knows it: who confirms applied sets. */
  readonly self: string;
  /** Told when `subscriptions` changed. */
  readonly onChange: () => void;
  readonly reconnect: BackoffOptions;
  readonly telemetry: Telemetry | undefined;
}

const EMPTY: readonly AdvertisedSubscription[] = Object.freeze([]);

export class Peer {
  readonly address: string;
  instance?: Instance | undefined;
  weight?: number | undefined;
  readonly ready = true;
  readonly backingOff = false;
  /** What the peer advertises now; empty while it cannot be reached. */
  subscriptions: readonly AdvertisedSubscription[] = EMPTY;
  readonly #settings: PeerSettings;
  readonly #transport: Transport;
  readonly #client: Client<typeof DirectService>;
  readonly #stop = new AbortController();
  #inFlight = 0;
  #failures = 0;
  #wait: DeadlineTimer | undefined;
  #wake: (() => void) | undefined;
  #up = false;
  /** Settles at the first set from the peer or the first failure to get one. */
  readonly contacted: Promise<void>;
  #contact: () => void = () => {};

  constructor(address: string, settings: PeerSettings) {
    this.address = address;
    this.#settings = settings;
    this.#transport = createTcpTransport({
      address,
      telemetry: settings.telemetry,
      reconnect: settings.reconnect,
    });
    this.#client = createClient(DirectService, this.#transport);
    this.contacted = new Promise((resolve) => {
      this.#contact = resolve;
    });
    if (settings.follow) runOutsideCallContext(() => void this.#follow());
    else this.#contact();
  }

  /** True while the peer's subscription stream is up (its set is known). */
  get up(): boolean {
    return this.#up;
  }

  /** Deliveries to this peer in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Sends `envelope` to subscription (or inbox) `to` of the peer, which may keep it waiting `within`
   * milliseconds for a free slot; resolves with what became of it. Rejects with the call's
   * `WeftError` (`UNAVAILABLE` when the peer cannot be reached). The call is made outside the
   * caller's call context: `options` says all it inherits.
   */
  async deliver(
    to: string,
    envelope: Envelope,
    within: number,
    attempt: number,
    options: CallOptions,
  ): Promise<Acceptance> {
    this.#inFlight++;
    try {
      const request = deliverRequest(to, envelope, within, attempt);
      const response = await runOutsideCallContext(() => this.#client.deliver(request, options));
      return response.status;
    } finally {
      this.#inFlight--;
    }
  }

  connect(): Promise<unknown> {
    return Promise.resolve();
  }

  call(call: UnaryCall): Promise<CallResult> {
    return this.#transport.call(call);
  }

  async close(): Promise<void> {
    this.#stop.abort();
    this.#contact();
    this.#wait?.cancel();
    this.#wake?.();
    await this.#transport.close();
  }

  async #follow(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let up = false;
      let reason = "the stream ended";
      try {
        const from = { from: this.#settings.self };
        for await (const set of this.#client.subscriptions(from, { signal })) {
          this.subscriptions = advertisedOf(set);
          this.#settings.onChange();
          // the peer's subscribe waits for this: a message published from here now reaches them
          if (Number.isSafeInteger(set.version))
            this.#client.applied({ from: this.#settings.self, version: set.version }).catch(ignore);
          if (!up) {
            up = true;
            this.#up = true;
            this.#contact();
            this.#failures = 0;
            const telemetry = this.#settings.telemetry;
            if (telemetry !== undefined)
              emit(telemetry, "direct.peer.up", {
                peer: this.address,
                subscriptions: this.subscriptions.length,
              });
          }
        }
      } catch (error) {
        reason = error instanceof Error ? error.message : String(error);
      }
      if (signal.aborted) return;
      this.#up = false;
      this.#contact();
      if (this.subscriptions !== EMPTY) {
        this.subscriptions = EMPTY;
        this.#settings.onChange();
      }
      if (up && this.#settings.telemetry !== undefined)
        emit(this.#settings.telemetry, "direct.peer.down", { peer: this.address, reason });
      this.#failures++;
      await this.#sleep(backoffDelay(this.#failures, this.#settings.reconnect));
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#wait = armDeadline(Date.now() + ms, resolve);
    });
  }
}

function ignore(): void {}
