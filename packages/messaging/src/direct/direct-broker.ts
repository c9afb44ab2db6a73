/*
 * The brokerless broker: processes deliver messages to one another over Weft RPC. Each process serves
 * `weft.messaging.v1.Direct` on one port, advertises its subscriptions to its peers over a stream, and
 * routes what it publishes itself: it matches the destination against every subscription it knows
 * of, picks one member per queue group with a balancer (a consistent hash for keyed messages), and
 * sends each copy straight to the process that holds it. Peers come from a registry or a static list.
 */
import { randomUUID } from "node:crypto";
import {
  type Balancer,
  type Call,
  CONSOLE_LOGGER,
  Code,
  ConfigError,
  consistentHash,
  createServer,
  currentCallContext,
  type Discovery,
  type DiscoveryPolicy,
  type DoneInfo,
  isHostPort,
  type Logger,
  Metadata,
  type MethodInfo,
  Reason,
  type Registrar,
  roundRobin,
  type Server,
  type Telemetry,
  type UnaryCall,
  WeftError,
} from "@weft/core";
import {
  abortError,
  type BackoffOptions,
  eitherSignal,
  loggerOption,
  Membership,
  NEVER,
  reconnectOptions,
  runOutsideCallContext,
  settleWithin,
  telemetryOption,
} from "@weft/core/internal";
import type {
  Broker,
  BrokerFeatures,
  BrokerSubscription,
  DeliverySink,
  Inbox,
  InboxHandlers,
  PublishOptions,
  SubscribeSpec,
} from "../broker.ts";
import { checkDestinationPattern, matches } from "../destination.ts";
import { type Envelope, malformedMessage } from "../envelope.ts";
import { LocalSubscription, type SubscriptionOwner } from "./local-subscription.ts";
import { Peer, type PeerSettings } from "./peer.ts";
import { type Member, partitionBase, routeOf, type Target } from "./routes.ts";
import {
  type Acceptance,
  type AdvertisedSubscription,
  attemptOf,
  DirectService,
  deliveredEnvelope,
  type SubscriptionSet,
  withinOf,
} from "./service.ts";

/** Options of `directBroker`. Give `registry` or `peers` (or neither, for one process alone). */
export interface DirectBrokerOptions {
  /**
   * Where the processes find one another: this broker registers its address under the service
   * `weft.messaging.v1.Direct` and follows the other instances of it (any core registry:
   * `createLocalRegistry()` for processes on one machine, `createMemoryRegistry()` in one process, etcd).
   */
  readonly registry?: Registrar & Discovery;
  /**
   * The other processes' `host:port` when there is no registry. This process's own address may be in
   * the list (it is skipped), so every process can be given the same list.
   */
  readonly peers?: readonly string[];
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on; 0 (the default) takes a free one (`address` says which). */
  readonly port?: number;
  /**
   * The `host:port` peers dial to reach this process. Default: with a registry, what
   * `server.registerWith` advertises (the bound address, `WEFT_ADVERTISE_ADDR`…); without, the bound
   * address.
   */
  readonly advertise?: string;
  /**
   * How long a publish waits for each subscriber to take the message, in milliseconds: a subscription
   * with `maxInFlight` deliveries outstanding holds the sender until one is acked or nacked. Past it
   * the publish rejects with `DEADLINE_EXCEEDED` and that subscriber does not get the message (the
   * subscriber decides, so the publisher knows). A shorter remaining deadline of the call the publish
   * is made in applies instead. Default 10,000.
   */
  readonly acceptTimeoutMs?: number;
  /**
   * How long `subscribe` waits for the peers this process reaches to confirm they know the new
   * subscription (so a message they publish once it resolved reaches it), and how long `directBroker`
   * waits to hear from the peers it finds at start, in milliseconds. A peer that has not confirmed by
   * then learns of it a little later. Default 2,000.
   */
  readonly announceTimeoutMs?: number;
  /**
   * Makes the balancer that chooses the member of a queue group for a message without a key: called
   * once per group, as balancers keep per-list state. Default `roundRobin`; any core balancer fits
   * (`() => p2cEwma()` is told each delivery's latency). A message with a key always goes to its key's
   * member on a consistent-hash ring of the group's members (`consistentHash` of core).
   */
  readonly balancer?: () => Balancer;
  /**
   * Waits between attempts to reach a peer (to follow its subscriptions) after it failed: exponential
   * with ±20 % jitter. Defaults 100 ms doubling to 10 s.
   */
  readonly reconnect?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number };
  /** How the peer list follows the registry (outage and retirement policy), as for a client. */
  readonly discovery?: DiscoveryPolicy;
  /** How long this process's registry record outlives a crash, in milliseconds; default the registry's. */
  readonly ttlMs?: number;
  /** Where the broker writes what goes wrong (a subscriber's sink that throws). Default `CONSOLE_LOGGER`. */
  readonly logger?: Logger;
  /** Receives `direct.peer.up`/`direct.peer.down` and the events of the broker's connections and server. */
  readonly telemetry?: Telemetry;
}

/** A direct broker: a `Broker`, plus where it listens and what it knows of its peers. */
export interface DirectBroker extends Broker {
  /** The `host:port` peers reach this process at. */
  readonly address: string;
  /**
   * Every subscription, of this process and of the peers it reaches now, that a message to
   * `destination` would be routed to (one member per group): where each lives and its group.
   */
  subscribersOf(destination: string): { readonly peer: string; readonly group: string | undefined }[];
}

/** What the direct broker promises: at-most-once, nothing stored; groups, wildcards and no-responders. */
export const DIRECT_FEATURES: BrokerFeatures = Object.freeze({
  persistent: false,
  atLeastOnce: false,
  queueGroups: true,
  ordering: false,
  wildcards: true,
  delayedRedelivery: false,
  noResponders: true,
});

const DEFAULT_ACCEPT_TIMEOUT_MS = 10_000;
const DEFAULT_ANNOUNCE_TIMEOUT_MS = 2_000;
/** How much longer a delivery call may take than the receiver may wait: the receiver's answer comes first. */
const ACCEPT_GRACE_MS = 2_000;
const PEER_RECONNECT: BackoffOptions = { initialDelayMs: 100, maxDelayMs: 10_000 };
/** Where inbox addresses start: `_direct.<base64url of host:port>.<inbox id>`. */
const INBOX_PREFIX = "_direct.";
/** Routes kept per destination before the cache starts over. */
const MAX_ROUTES = 1_024;

/**
 * Creates a brokerless broker and starts it: listens on one port, registers in `registry` (or uses
 * the static `peers`) and follows its peers' subscriptions. Resolves once it listens, is registered
 * and has heard from the peers it found (at most `announceTimeoutMs`). Bad options throw a
 * `ConfigError` naming the option, at once; a port in use rejects with the listen error.
 *
 * Guarantees (`features`): at-most-once, nothing stored. A message goes to the subscriptions known when
 * it is published: every private subscription and one member of each queue group; a publish
 * resolves once each of them took it (a full subscription holds the publish: backpressure). A group
 * member that cannot be reached is skipped for another; when no member of a group could take it the
 * publish rejects with `UNAVAILABLE`/`BROKER_UNAVAILABLE` (other groups may have it). A connection lost
 * while a message was on its way rejects the publish too: that copy may or may not have been delivered,
 * and is never sent twice. A nack redelivers in the receiving process (same subscription, after the
 * delay; a subscription that stops hands it to another member of its group), and is lost with that
 * process. Keyed messages of one publisher keep their order while a group's membership is stable.
 * `subscribe` resolves once the peers this process reaches confirmed they route to the subscription
 * (at most `announceTimeoutMs`). See docs/messaging.md, "The direct broker".
 *
 * ```ts
 * const broker = await directBroker({ registry: createLocalRegistry() });
 * const messenger = createMessenger({ broker });
 * ```
 */
export function directBroker(options: DirectBrokerOptions = {}): Promise<DirectBroker> {
  return started(new DirectBrokerImpl(settingsOf(options)));
}

async function started(broker: DirectBrokerImpl): Promise<DirectBroker> {
  try {
    await broker.start();
  } catch (error) {
    await broker.close();
    throw error;
  }
  return broker;
}

interface Settings {
  readonly registry: (Registrar & Discovery) | undefined;
  readonly peers: readonly string[] | undefined;
  readonly host: string;
  readonly port: number;
  readonly advertise: string | undefined;
  readonly acceptTimeoutMs: number;
  readonly announceTimeoutMs: number;
  readonly balancer: () => Balancer;
  readonly reconnect: BackoffOptions;
  readonly discovery: DiscoveryPolicy | undefined;
  readonly ttlMs: number | undefined;
  readonly logger: Logger;
  readonly telemetry: Telemetry | undefined;
}

function settingsOf(options: DirectBrokerOptions): Settings {
  if (typeof options !== "object" || options === null) throw new ConfigError("options", "an object", options);
  const { registry, peers } = options;
  if (registry !== undefined && peers !== undefined)
    throw new ConfigError("peers", "no static peers when a registry is given", peers);
  if (
    registry !== undefined &&
    (typeof registry?.register !== "function" || typeof registry.watch !== "function")
  )
    throw new ConfigError("registry", "a registry (register and watch)", registry);
  if (peers !== undefined && (!Array.isArray(peers) || !peers.every(isHostPort)))
    throw new ConfigError("peers", "a list of host:port", peers);
  const host = options.host ?? "127.0.0.1";
  if (typeof host !== "string" || host === "") throw new ConfigError("host", "an interface address", host);
  const port = options.port ?? 0;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65_535)
    throw new ConfigError("port", "an integer from 0 to 65535", port);
  if (options.advertise !== undefined && !isHostPort(options.advertise))
    throw new ConfigError("advertise", "host:port", options.advertise);
  const acceptTimeoutMs = options.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS;
  if (typeof acceptTimeoutMs !== "number" || !(acceptTimeoutMs > 0))
    throw new ConfigError("acceptTimeoutMs", "a positive number of milliseconds", acceptTimeoutMs);
  const announceTimeoutMs = options.announceTimeoutMs ?? DEFAULT_ANNOUNCE_TIMEOUT_MS;
  if (typeof announceTimeoutMs !== "number" || !(announceTimeoutMs >= 0))
    throw new ConfigError("announceTimeoutMs", "milliseconds ≥ 0", announceTimeoutMs);
  const balancer = options.balancer ?? roundRobin;
  if (typeof balancer !== "function")
    throw new ConfigError("balancer", "a function making a Balancer (e.g. roundRobin)", balancer);
  if (options.ttlMs !== undefined && !(Number.isSafeInteger(options.ttlMs) && options.ttlMs > 0))
    throw new ConfigError("ttlMs", "a positive integer of milliseconds", options.ttlMs);
  return {
    registry,
    peers,
    host,
    port,
    advertise: options.advertise,
    acceptTimeoutMs,
    announceTimeoutMs,
    balancer,
    reconnect: options.reconnect === undefined ? PEER_RECONNECT : reconnectOptions(options.reconnect),
    discovery: options.discovery,
    ttlMs: options.ttlMs,
    logger: loggerOption("logger", options.logger, CONSOLE_LOGGER),
    telemetry: telemetryOption(options.telemetry),
  };
}

/** The method a balancer sees picking a group member: the delivery the message goes in. */
const DELIVER: MethodInfo = {
  service: DirectService,
  name: "deliver",
  path: `/${DirectService.typeName}/deliver`,
  kind: "unary",
  input: DirectService.methods.deliver.input,
  output: DirectService.methods.deliver.output,
  idempotent: false,
  proto: undefined,
};

/** The error of a publish that could not reach where it had to go. */
function unavailable(message: string, cause?: unknown): WeftError {
  return new WeftError(Code.UNAVAILABLE, `direct broker: ${message}`, {
    reason: Reason.BROKER_UNAVAILABLE,
    cause,
  });
}

/** True for an error that proves a delivery never reached the peer: it may go to another member. */
function neverSent(error: unknown): boolean {
  if (!(error instanceof WeftError) || error.code !== Code.UNAVAILABLE) return false;
  return (
    error.reason === Reason.CONNECTION_FAILED ||
    error.reason === Reason.NO_AVAILABLE_NODE ||
    error.reason === Reason.REFUSED_STREAM ||
    error.reason === Reason.SHUTTING_DOWN
  );
}

/** How one target's delivery ended. */
type Outcome = "accepted" | "unreachable";

class DirectBrokerImpl implements DirectBroker, SubscriptionOwner {
  readonly name = "direct";
  readonly features = DIRECT_FEATURES;
  address = "";
  readonly #settings: Settings;
  readonly #server: Server;
  /** Per queue group: the balancer for messages without a key, and the consistent hash for keyed ones. */
  readonly #balancers = new Map<string, { readonly plain: Balancer; readonly keyed: Balancer }>();
  readonly #subscriptions = new Map<string, LocalSubscription>();
  readonly #inboxes = new Map<string, InboxHandlers>();
  /** Peers from the registry, or the static ones. */
  #membership: Membership<Peer> | undefined;
  #static: readonly Peer[] = [];
  /** Peers only replied to (an inbox's address that is not a known peer). */
  readonly #others = new Map<string, Peer>();
  #peerSettings: PeerSettings | undefined;
  /** The processes following this one's subscriptions (by `host:port`): the version each has applied. */
  readonly #followers = new Map<string, { applied: number }>();
  /** Fired when a follower confirmed a version. */
  readonly #applied = new Changes();
  #inboxPrefix = "";
  #nextId = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Hand-overs of closed subscriptions' nacked messages still on their way. */
  readonly #handing = new Set<Promise<void>>();
  /** This process's advertised subscriptions, rebuilt when they change; `version` counts changes. */
  #advertised: SubscriptionSet = { version: 0, subscriptions: [] };
  #version = 0;
  /** Fired when this process's set changed, and on close. */
  readonly #changed = new Changes();
  /** Targets per destination for the topology `#routesOf` was built from. */
  #routes = new Map<string, Target[]>();
  #routesOf: readonly Peer[] | undefined;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.#server = createServer({ logger: settings.logger, telemetry: settings.telemetry });
    this.#server.register(DirectService, {
      deliver: async (request, ctx) => {
        const { envelope, malformed } = deliveredEnvelope(request);
        const deadline = Date.now() + withinOf(request);
        const attempt = attemptOf(request);
        return {
          status: await this.#accept(request.to, envelope, ctx.signal, deadline, malformed, attempt),
        };
      },
      subscriptions: (request, ctx) => this.#follow(request.from, ctx.signal),
      applied: ({ from, version }) => {
        const follower = this.#followers.get(from);
        if (follower !== undefined && typeof version === "number" && version > follower.applied) {
          follower.applied = version;
          this.#applied.fire();
        }
        return {};
      },
    });
  }

  async start(): Promise<void> {
    const s = this.#settings;
    const bound = await this.#server.listen({ host: s.host, port: s.port });
    this.address = s.advertise ?? `${bound.host}:${bound.port}`;
    if (s.registry !== undefined) {
      const registration = await this.#server.registerWith(s.registry, {
        services: [DirectService.typeName],
        ...(s.advertise === undefined ? {} : { advertise: { weft: s.advertise } }),
        ...(s.ttlMs === undefined ? {} : { ttlMs: s.ttlMs }),
      });
      this.address = registration.instances[0]?.addresses.weft ?? this.address;
    }
    this.#inboxPrefix = `${INBOX_PREFIX}${Buffer.from(this.address).toString("base64url")}.`;
    const peerSettings: PeerSettings = {
      follow: true,
      self: this.address,
      onChange: () => this.#invalidate(),
      reconnect: s.reconnect,
      telemetry: s.telemetry,
    };
    this.#peerSettings = peerSettings;
    if (s.registry !== undefined) {
      this.#membership = new Membership<Peer>({
        discovery: s.registry,
        service: DirectService.typeName,
        protocol: "weft",
        factory: (address) =>
          new Peer(address, address === this.address ? { ...peerSettings, follow: false } : peerSettings),
        policy: { logger: s.logger, ...s.discovery },
        telemetry: s.telemetry,
      });
    } else if (s.peers !== undefined) {
      const addresses = [...new Set(s.peers)].filter((a) => a !== this.address);
      this.#static = addresses.map((address) => new Peer(address, peerSettings));
    }
    // hear from the peers there are before the first subscribe or publish (bounded)
    const deadline = Date.now() + s.announceTimeoutMs;
    await settleWithin(this.#membership?.firstSet ?? Promise.resolve(), NEVER, deadline).catch(ignore);
    const contacts = this.#peers().map((p) => p.contacted);
    await settleWithin(Promise.all(contacts), NEVER, deadline).catch(ignore);
  }

  /** The peers known now (with a registry, this process's own record too: a peer never followed). */
  #peers(): readonly Peer[] {
    return this.#membership?.nodes ?? this.#static;
  }

  // ---- subscribing

  async subscribe(spec: SubscribeSpec, sink: DeliverySink): Promise<BrokerSubscription> {
    this.#open(spec?.destination);
    checkDestinationPattern(spec.destination);
    if (spec.group !== undefined && (typeof spec.group !== "string" || spec.group === ""))
      throw new ConfigError("group", "a non-empty string or undefined", spec.group);
    if (!Number.isSafeInteger(spec.maxInFlight) || spec.maxInFlight < 1)
      throw new ConfigError("maxInFlight", "an integer ≥ 1", spec.maxInFlight);
    if (typeof sink !== "function") throw new ConfigError("sink", "a function", sink);
    const subscription = new LocalSubscription(`s${++this.#nextId}`, spec, sink, this);
    this.#subscriptions.set(subscription.id, subscription);
    this.#advertise();
    await this.#announced(this.#version);
    return subscription;
  }

  /**
   * Resolves once every process following this one's subscriptions, and every peer this one reaches
   * (it will follow soon), has confirmed it applied `version` of the set (or `announceTimeoutMs`
   * passed, or the broker closed).
   */
  async #announced(version: number): Promise<void> {
    const deadline = Date.now() + this.#settings.announceTimeoutMs;
    const behind = (address: string) => (this.#followers.get(address)?.applied ?? -1) < version;
    for (;;) {
      const pending =
        [...this.#followers.values()].some((f) => f.applied < version) ||
        this.#peers().some((p) => p.up && p.address !== this.address && behind(p.address));
      if (!pending || this.#closed) return;
      try {
        await settleWithin(this.#applied.next, NEVER, deadline);
      } catch {
        return; // the ones left learn of it with their next push
      }
    }
  }

  stopped(subscription: LocalSubscription): void {
    if (this.#subscriptions.delete(subscription.id)) this.#advertise();
  }

  /**
   * A stopped subscription's nacked message: to another member of its group (a private subscription's
   * is dropped), at once, whatever the nack's delay. A close waits for these before it disconnects.
   */
  handOver(subscription: LocalSubscription, envelope: Envelope, attempt: number): void {
    const group = subscription.spec.group;
    if (group === undefined) return;
    const target = this.#route(envelope.destination).find((t) => t.group === group);
    if (target === undefined) return;
    const handing = runOutsideCallContext(() => this.#deliverTo(target, envelope, {}, attempt)).then(
      ignore,
      (error: unknown) =>
        this.#settings.logger.warn(
          { err: error, destination: envelope.destination, group },
          "direct broker: a nacked message of a closed subscription could not be handed over; dropped",
        ),
    );
    this.#handing.add(handing);
    void handing.finally(() => this.#handing.delete(handing));
  }

  sinkFailed(subscription: LocalSubscription, error: unknown): void {
    this.#settings.logger.error(
      { err: error, destination: subscription.spec.destination },
      "direct broker: a subscriber's sink threw; the delivery was dropped",
    );
  }

  /** Rebuilds what this process advertises and wakes its followers. */
  #advertise(): void {
    const subscriptions: AdvertisedSubscription[] = [];
    for (const s of this.#subscriptions.values())
      subscriptions.push({
        id: s.id,
        destination: s.spec.destination,
        group: s.spec.group ?? null,
        partitions: s.spec.partitions ?? null,
      });
    this.#advertised = { version: this.#version + 1, subscriptions };
    this.#version++;
    this.#invalidate();
    this.#changed.fire();
  }

  /** A peer's `subscriptions` stream: the whole set now, and again after each change. */
  async *#follow(from: string, signal: AbortSignal): AsyncGenerator<SubscriptionSet> {
    if (typeof from !== "string") throw malformedMessage("a follower must say where it is (from)");
    const follower = { applied: -1 };
    this.#followers.set(from, follower);
    let version = -1;
    try {
      for (;;) {
        if (version !== this.#version) {
          version = this.#version;
          yield this.#advertised;
        } else if (this.#closed)
          return; // after the last set (empty once closing closed them all)
        else await settleWithin(this.#changed.next, signal, undefined);
      }
    } finally {
      if (this.#followers.get(from) === follower) this.#followers.delete(from);
    }
  }

  /** A message for subscription or inbox `to` of this process: hands it over (see `LocalSubscription.accept`). */
  #accept(
    to: string,
    envelope: Envelope,
    signal: AbortSignal,
    deadline: number,
    malformed?: WeftError,
    attempt = 1,
  ): Promise<Acceptance> {
    const inbox = this.#inboxes.get(to);
    if (inbox !== undefined) {
      // a reply whose reserved headers do not parse cannot be matched to its request: dropped
      if (malformed === undefined) inbox.onReply(envelope);
      return Promise.resolve("accepted");
    }
    const subscription = this.#subscriptions.get(to);
    if (subscription === undefined) return Promise.resolve("gone");
    // a partition's message is delivered with the destination it was published to (no `.p3`)
    const { partitions, destination } = subscription.spec;
    const base =
      partitions === undefined || matches(destination, envelope.destination)
        ? undefined
        : partitionBase(envelope.destination, partitions);
    return subscription.accept(
      base === undefined ? envelope : { ...envelope, destination: base },
      signal,
      deadline,
      malformed,
      attempt,
    );
  }

  // ---- request/reply

  async openInbox(handlers: InboxHandlers): Promise<Inbox> {
    this.#open("an inbox");
    if (typeof handlers?.onReply !== "function" || typeof handlers.onNoResponders !== "function")
      throw new ConfigError("handlers", "{ onReply, onNoResponders }", handlers);
    const id = `i${randomUUID().slice(0, 8)}${++this.#nextId}`;
    this.#inboxes.set(id, handlers);
    const address = `${this.#inboxPrefix}${id}`;
    return {
      address: () => address,
      close: async () => {
        this.#inboxes.delete(id);
      },
    };
  }

  /** Tells the local inbox a request went to nobody. */
  #noResponders(envelope: Envelope): void {
    const { replyTo, correlationId } = envelope;
    if (replyTo === undefined || correlationId === undefined || !replyTo.startsWith(this.#inboxPrefix))
      return;
    const inbox = this.#inboxes.get(replyTo.slice(this.#inboxPrefix.length));
    if (inbox !== undefined) queueMicrotask(() => inbox.onNoResponders(correlationId));
  }

  // ---- publishing

  async publish(envelope: Envelope, options: PublishOptions = {}): Promise<void> {
    this.#open(envelope?.destination);
    if (envelope.destination.startsWith(INBOX_PREFIX)) return this.#reply(envelope, options);
    const targets = this.#route(envelope.destination);
    if (targets.length === 0) {
      this.#noResponders(envelope);
      return;
    }
    const outcomes = await Promise.all(targets.map((t) => this.#deliverTo(t, envelope, options)));
    if (envelope.replyTo !== undefined) {
      if (!outcomes.includes("accepted")) this.#noResponders(envelope);
      return;
    }
    const lost = targets.filter((t, i) => t.group !== undefined && outcomes[i] === "unreachable");
    if (lost.length > 0)
      throw unavailable(
        `no member of ${lost.map((t) => `group "${t.group}"`).join(", ")} could be reached for ${envelope.destination}`,
      );
  }

  /** A reply: straight to the process in the inbox address. A reply nobody waits for any more is dropped. */
  async #reply(envelope: Envelope, options: PublishOptions): Promise<void> {
    const rest = envelope.destination.slice(INBOX_PREFIX.length);
    const dot = rest.indexOf(".");
    const address = dot > 0 ? Buffer.from(rest.slice(0, dot), "base64url").toString() : "";
    if (!isHostPort(address)) return;
    const ctx = currentCallContext();
    const signal = eitherSignal(options.signal ?? NEVER, ctx?.signal ?? NEVER);
    // an inbox takes a reply at once (or is gone): nothing to wait for
    await this.#send(address, rest.slice(dot + 1), envelope, 0, signal);
  }

  /** Targets of `destination`, cached until the topology (own or a peer's subscriptions, peers) changes. */
  #route(destination: string): Target[] {
    const peers = this.#peers();
    if (peers !== this.#routesOf) this.#invalidate(peers);
    let targets = this.#routes.get(destination);
    if (targets === undefined) {
      if (this.#routes.size >= MAX_ROUTES) this.#routes.clear();
      targets = routeOf(destination, this.#advertisedEverywhere(peers));
      this.#routes.set(destination, targets);
    }
    return targets;
  }

  *#advertisedEverywhere(
    peers: readonly Peer[],
  ): Generator<readonly [string, readonly AdvertisedSubscription[]]> {
    yield [this.address, this.#advertised.subscriptions];
    for (const peer of peers) if (peer.address !== this.address) yield [peer.address, peer.subscriptions];
  }

  #invalidate(peers?: readonly Peer[]): void {
    this.#routes = new Map();
    this.#routesOf = peers ?? this.#peers();
  }

  subscribersOf(destination: string): { readonly peer: string; readonly group: string | undefined }[] {
    return this.#route(destination).flatMap((t) => t.members.map((m) => ({ peer: m.peer, group: t.group })));
  }

  /**
   * One copy: to the private subscription, or to one member of the group, trying the next when one
   * is gone or provably unreached. Rejects when the copy may have been lost on its way, or when the
   * subscriber could not take it in time (`DEADLINE_EXCEEDED`).
   */
  async #deliverTo(
    target: Target,
    envelope: Envelope,
    options: PublishOptions,
    attempt = 1,
  ): Promise<Outcome> {
    const ctx = currentCallContext();
    const signal = eitherSignal(options.signal ?? NEVER, ctx?.signal ?? NEVER);
    const timeoutMs = this.#settings.acceptTimeoutMs;
    const within = Math.max(0, Math.min(timeoutMs, (ctx?.deadline ?? Number.POSITIVE_INFINITY) - Date.now()));
    let members = target.members;
    let call: Call | undefined;
    while (members.length > 0) {
      let member: Member;
      let done: ((info: DoneInfo) => void) | undefined;
      if (target.group === undefined) member = members[0]!;
      else {
        call ??= pickCall(envelope);
        const balancer = this.#balancerOf(target.group, envelope.key !== undefined);
        const picked = balancer.pick(members, call);
        if (picked === undefined) break;
        member = picked.node;
        if (balancer.feedback) done = picked.done.bind(picked);
      }
      const start = done === undefined ? 0 : performance.now();
      let status: Acceptance;
      try {
        status = await this.#send(member.peer, member.subscription.id, envelope, within, signal, attempt);
      } catch (error) {
        done?.({ latencyMs: performance.now() - start, error });
        if (!neverSent(error)) throw error;
        members = members.filter((m) => m !== member);
        continue;
      }
      done?.({ latencyMs: performance.now() - start, error: undefined });
      if (status === "accepted") return "accepted";
      if (signal.aborted) throw abortError(signal);
      if (status === "timeout")
        throw new WeftError(
          Code.DEADLINE_EXCEEDED,
          `direct broker: the subscriber of ${envelope.destination} at ${member.peer} did not take it within ${within} ms`,
          { reason: Reason.DEADLINE_EXCEEDED },
        );
      members = members.filter((m) => m !== member);
    }
    return "unreachable";
  }

  #balancerOf(group: string, keyed: boolean): Balancer {
    let pair = this.#balancers.get(group);
    if (pair === undefined) {
      pair = { plain: this.#settings.balancer(), keyed: consistentHash({ key: keyOf }) };
      this.#balancers.set(group, pair);
    }
    return keyed ? pair.keyed : pair.plain;
  }

  /**
   * Sends `envelope` to `to` in the process at `address` (this one: no network), which may hold it
   * `within` ms for a free slot, and resolves with what became of it. Rejects with the abort error of
   * `signal` or `UNAVAILABLE` (`BROKER_UNAVAILABLE` once the connection was lost mid-way).
   */
  async #send(
    address: string,
    to: string,
    envelope: Envelope,
    within: number,
    signal: AbortSignal,
    attempt = 1,
  ): Promise<Acceptance> {
    if (address === this.address)
      return this.#accept(to, envelope, signal, Date.now() + within, undefined, attempt);
    const peer = this.#peers().find((p) => p.address === address) ?? this.#other(address);
    // the call outlives the receiver's own wait by a grace, so the receiver answers first
    const timeoutMs = within + ACCEPT_GRACE_MS;
    try {
      return await peer.deliver(
        to,
        envelope,
        within,
        attempt,
        signal === NEVER ? { timeoutMs } : { timeoutMs, signal },
      );
    } catch (error) {
      if (error instanceof WeftError && error.code === Code.UNAVAILABLE && !neverSent(error))
        throw unavailable(
          `the connection to ${address} was lost while delivering ${envelope.destination}; it may or may not have been delivered`,
          error,
        );
      throw error;
    }
  }

  /** A peer this process only replies to. */
  #other(address: string): Peer {
    let peer = this.#others.get(address);
    if (peer === undefined) {
      peer = new Peer(address, { ...this.#peerSettings!, follow: false });
      this.#others.set(address, peer);
    }
    return peer;
  }

  #open(what: unknown): void {
    if (this.#closed) throw unavailable(`the broker is closed (${String(what)})`);
  }

  // ---- closing

  /**
   * Closes the subscriptions (messages waiting for a slot are refused as `gone`, so their senders try
   * another member), which the peers are told at once, then leaves the registry, stops the peer
   * streams and connections, and shuts the server down (1 s for calls in flight).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#subscriptions.values()].map((s) => s.close()));
    await Promise.all(this.#handing);
    this.#inboxes.clear();
    this.#changed.fire();
    const peers = [...this.#static, ...this.#others.values()];
    this.#static = [];
    this.#others.clear();
    await Promise.all([
      this.#membership?.close(),
      ...peers.map((p) => p.close()),
      this.#server.shutdown({ timeoutMs: 1_000, deregisterDelayMs: 0 }),
    ]);
  }
}

function ignore(): void {}

/** The key of the message a pick call carries. */
function keyOf(call: Call): string | undefined {
  return (call as UnaryCall<Envelope>).message.key;
}

/** The call a balancer picks a group member for: the message's delivery, its key in `weft-key`. */
function pickCall(envelope: Envelope): Call {
  const headers = new Metadata();
  if (envelope.key !== undefined) headers.set("weft-key", envelope.key);
  return {
    method: DELIVER,
    side: "client",
    headers,
    signal: NEVER,
    deadline: undefined,
    serializer: "msgpack",
    peer: undefined,
    protocol: undefined,
    bytes: undefined,
    stream: false,
    message: envelope,
  };
}

/** Wakes whoever waits for the next change: `next` settles at the following `fire`. */
class Changes {
  next: Promise<void>;
  #fire: () => void = ignore;

  constructor() {
    this.next = this.#renew();
  }

  fire(): void {
    const fire = this.#fire;
    this.next = this.#renew();
    fire();
  }

  #renew(): Promise<void> {
    return new Promise((resolve) => {
      this.#fire = resolve;
    });
  }
}
