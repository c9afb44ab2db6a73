/*
 * A server in a registry: what it advertises (one record for the application or one per service, an
 * address per protocol it listens on), readiness before registering, and leaving the registry first
 * when it shuts down. The server keeps its registrations in a `Registrations`; its `shutdown`
 * deregisters them (bounded, failures reported) before it drains.
 */
import { randomUUID } from "node:crypto";
import { networkInterfaces } from "node:os";
import { armDeadline, deadlineAfter } from "../call/deadline.ts";
import { NEVER, settleWithin } from "../call/signal.ts";
import type {
  AdvertisedProtocol,
  Instance,
  InstancePatch,
  Registrar,
  Registration,
} from "../discovery/registry.ts";
import { isHostPort } from "../discovery/target.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";

/** A bound address as `listen` reports it. */
export interface BoundAddress {
  readonly host: string;
  readonly port: number;
}

/** How a server registers itself: `server.registerWith(registrar, options)`. */
export interface ServerRegistrationOptions {
  /** The services to advertise, by full name (`catalog.v1.Catalog`). Default: every service registered on the server. */
  services?: readonly string[];
  /**
   * `"application"` (the default): one record listing every service, as Dubbo 3 and Kitex do.
   * `"interface"`: one record per service, with the id `<id>/<service>`.
   */
  granularity?: "application" | "interface";
  /**
   * The address to advertise per protocol, `host:port`, or a `host` alone to take the bound port.
   * Per protocol the first of: this option; `WEFT_ADVERTISE_ADDR_WEFT` / `_GRPC` / `_HTTP` in the
   * environment; `WEFT_ADVERTISE_ADDR` (a host for every protocol, or `host:port`, whose port then
   * applies to Weft TCP only); the bound address, where a wildcard bind (`0.0.0.0`, `::`) becomes
   * the first non-internal IPv4 address of `os.networkInterfaces()`, else `127.0.0.1`. A protocol is
   * advertised when the server listens on it (`listen`, `listenGrpc`, `listenRest`), or when this
   * option gives it a full `host:port`.
   */
  advertise?: Partial<Record<AdvertisedProtocol, string>>;
  /** Relative share of traffic for weighted balancers; default 100. */
  weight?: number;
  /** The deployed version, free-form; default `""`. */
  version?: string;
  /** Availability zone; default `""`. */
  zone?: string;
  /** Labels routing filters read; default `{}`. */
  labels?: Record<string, string>;
  /** The record's id (application level) or id prefix (interface level); default a random UUID. */
  id?: string;
  /** How long the record outlives a crashed server, milliseconds; default the registry's own. */
  ttlMs?: number;
  /**
   * Register only once this returns true (a warm cache, a database reachable): called at once, then
   * every `readyIntervalMs` until it passes or `readyTimeoutMs` is spent, when `registerWith` rejects
   * with `DEADLINE_EXCEEDED`. A call that throws counts as not ready. Default: ready at once.
   */
  ready?: () => boolean | Promise<boolean>;
  /** Milliseconds between `ready` checks; default 500. */
  readyIntervalMs?: number;
  /** Milliseconds `ready` may take to pass; default 30,000. */
  readyTimeoutMs?: number;
  /** Where the environment variables are read; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** A server's standing registration in one registry. */
export interface ServerRegistration {
  /** The records as last written: one (application level) or one per service (interface level). */
  readonly instances: readonly Instance[];
  /** Changes every record (weight, labels, version, zone, addresses); watchers see `updated`. */
  update(patch: InstancePatch): Promise<void>;
  /** Removes every record; idempotent. `shutdown` does it for every registration still standing. */
  deregister(): Promise<void>;
}

/** Defaults of `registerWith` and of the registry part of `shutdown`. */
export const REGISTRATION_DEFAULTS = {
  readyIntervalMs: 500,
  readyTimeoutMs: 30_000,
  /** How long shutdown waits between deregistering and draining, when the server has registrations. */
  deregisterDelayMs: 1_000,
  /** How long shutdown waits for the registries to confirm deregistration before going on. */
  deregisterTimeoutMs: 2_000,
} as const;

const PROTOCOLS: readonly AdvertisedProtocol[] = ["weft", "grpc", "http"];

type Interfaces = ReturnType<typeof networkInterfaces>;

/** The address to advertise for a wildcard bind: the first non-internal IPv4, else loopback. */
export function hostForWildcard(interfaces: Interfaces = networkInterfaces()): string {
  for (const list of Object.values(interfaces)) {
    for (const nic of list ?? []) if (nic.family === "IPv4" && !nic.internal) return nic.address;
  }
  return "127.0.0.1";
}

const WILDCARDS = new Set(["", "0.0.0.0", "::", "[::]"]);

function joinHostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The address per protocol a server advertises, by the rule `ServerRegistrationOptions.advertise`
 * states. `bound` holds the protocols the server listens on.
 */
export function advertisedAddresses(
  bound: ReadonlyMap<AdvertisedProtocol, BoundAddress>,
  advertise: Partial<Record<AdvertisedProtocol, string>> = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
  interfaces?: Interfaces,
): Partial<Record<AdvertisedProtocol, string>> {
  const out: Partial<Record<AdvertisedProtocol, string>> = {};
  const generic = env.WEFT_ADVERTISE_ADDR || undefined;
  for (const protocol of PROTOCOLS) {
    const explicit = advertise[protocol];
    if (explicit !== undefined && (typeof explicit !== "string" || explicit === ""))
      throw new ConfigError(`advertise.${protocol}`, "a host or host:port", explicit);
    const at = bound.get(protocol);
    if (explicit !== undefined && isHostPort(explicit)) {
      out[protocol] = explicit;
      continue;
    }
    if (at === undefined) {
      if (explicit !== undefined)
        throw new ConfigError(
          `advertise.${protocol}`,
          "host:port, as the server does not listen on it",
          explicit,
        );
      continue;
    }
    let given = explicit ?? (env[`WEFT_ADVERTISE_ADDR_${protocol.toUpperCase()}`] || undefined);
    if (given === undefined && generic !== undefined)
      given = protocol === "weft" || !isHostPort(generic) ? generic : generic.replace(/:\d+$/, "");
    if (given !== undefined) out[protocol] = isHostPort(given) ? given : joinHostPort(given, at.port);
    else {
      const host = WILDCARDS.has(at.host) ? hostForWildcard(interfaces) : at.host;
      out[protocol] = joinHostPort(host, at.port);
    }
  }
  return out;
}

/** Calls `ready` until it passes, every `intervalMs`, for at most `timeoutMs`. */
async function whenReady(
  ready: () => boolean | Promise<boolean>,
  intervalMs: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = deadlineAfter(timeoutMs);
  for (;;) {
    const tooLate = (): WeftError =>
      new WeftError(Code.DEADLINE_EXCEEDED, `ready() did not pass within ${timeoutMs} ms`, {
        reason: Reason.DEADLINE_EXCEEDED,
      });
    // a check that never settles still ends at the deadline
    const passed = await settleWithin(Promise.resolve().then(ready), NEVER, deadline).catch((e: unknown) => {
      if (e instanceof WeftError && e.code === Code.DEADLINE_EXCEEDED) throw tooLate();
      return false;
    });
    if (passed === true) return;
    if (Date.now() + intervalMs > deadline) throw tooLate();
    await new Promise<void>((resolve) => armDeadline(deadlineAfter(intervalMs), resolve));
  }
}

/** A milliseconds option: `fallback` when absent; a `ConfigError` naming it unless a finite number ≥ `min`. */
export function checkMs(option: string, v: unknown, fallback: number, min = 0): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min)
    throw new ConfigError(option, `a number of milliseconds ≥ ${min}`, v);
  return v;
}

/** What `registerWith` needs of the server. */
export interface RegisteringServer {
  /** Whether it still takes calls (not shutting down). */
  readonly serving: boolean;
  /** The full names of the services registered on it. */
  services(): string[];
  /** The protocols it listens on, with their bound addresses. */
  readonly bound: ReadonlyMap<AdvertisedProtocol, BoundAddress>;
}

/** A server's registrations, which its shutdown deregisters. */
export class Registrations {
  readonly #standing = new Set<ServerRegistrationImpl>();

  get size(): number {
    return this.#standing.size;
  }

  /** Registers `server` with `registrar` as `options` say. */
  async register(
    server: RegisteringServer,
    registrar: Registrar,
    options: ServerRegistrationOptions = {},
  ): Promise<ServerRegistration> {
    if (typeof registrar?.register !== "function")
      throw new ConfigError(
        "registrar",
        "a registry (createMemoryRegistry, createLocalRegistry…)",
        registrar,
      );
    const granularity = options.granularity ?? "application";
    if (granularity !== "application" && granularity !== "interface")
      throw new ConfigError("granularity", '"application" or "interface"', granularity);
    const registered = server.services();
    const services = options.services ?? registered;
    if (!Array.isArray(services) || services.length === 0)
      throw new ConfigError("services", "a non-empty list of services registered on the server", services);
    for (const s of services)
      if (!registered.includes(s)) throw new ConfigError("services", "services registered on the server", s);
    const readyIntervalMs = checkMs(
      "readyIntervalMs",
      options.readyIntervalMs,
      REGISTRATION_DEFAULTS.readyIntervalMs,
      1,
    );
    const readyTimeoutMs = checkMs(
      "readyTimeoutMs",
      options.readyTimeoutMs,
      REGISTRATION_DEFAULTS.readyTimeoutMs,
    );
    const addresses = advertisedAddresses(server.bound, options.advertise, options.env);
    if (Object.keys(addresses).length === 0) {
      throw new ConfigError(
        "advertise",
        "an address to advertise: call listen() (or listenGrpc/listenRest) first, or give advertise host:port",
        options.advertise,
      );
    }
    if (options.ready !== undefined) await whenReady(options.ready, readyIntervalMs, readyTimeoutMs);
    if (!server.serving) throw new Error("the server is shutting down");
    const id = options.id ?? randomUUID();
    const base = {
      addresses,
      ...(options.weight !== undefined && { weight: options.weight }),
      ...(options.version !== undefined && { version: options.version }),
      ...(options.zone !== undefined && { zone: options.zone }),
      ...(options.labels !== undefined && { labels: options.labels }),
    };
    const inputs =
      granularity === "application"
        ? [{ ...base, id, services }]
        : services.map((s) => ({ ...base, id: `${id}/${s}`, services: [s] }));
    const registerOptions = options.ttlMs === undefined ? undefined : { ttlMs: options.ttlMs };
    const done: Registration[] = [];
    try {
      for (const input of inputs) done.push(await registrar.register(input, registerOptions));
    } catch (error) {
      await Promise.allSettled(done.map((r) => r.deregister()));
      throw error;
    }
    // shutdown began while the registry answered: take the record back rather than leave it behind
    if (!server.serving) {
      await Promise.allSettled(done.map((r) => r.deregister()));
      throw new Error("the server is shutting down");
    }
    const registration = new ServerRegistrationImpl(done, (r) => this.#standing.delete(r));
    this.#standing.add(registration);
    return registration;
  }

  /**
   * Deregisters every standing registration, waiting at most `timeoutMs` for the registries; what
   * fails or takes longer is passed to `report` (shutdown goes on whatever happens).
   */
  async leave(timeoutMs: number, report: (error: unknown) => void): Promise<void> {
    const deadline = deadlineAfter(timeoutMs);
    const all = [...this.#standing].map((r) =>
      settleWithin(r.deregister(), NEVER, deadline).catch((cause: unknown) => {
        report(
          new WeftError(Code.UNAVAILABLE, "deregistering the server failed; shutting down anyway", {
            reason: Reason.REGISTRY_UNAVAILABLE,
            cause,
          }),
        );
      }),
    );
    await Promise.all(all);
  }
}

class ServerRegistrationImpl implements ServerRegistration {
  readonly #registrations: readonly Registration[];
  readonly #onEnd: (r: ServerRegistrationImpl) => void;
  #deregistered: Promise<void> | undefined;

  constructor(registrations: readonly Registration[], onEnd: (r: ServerRegistrationImpl) => void) {
    this.#registrations = registrations;
    this.#onEnd = onEnd;
  }

  get instances(): readonly Instance[] {
    return this.#registrations.map((r) => r.instance);
  }

  async update(patch: InstancePatch): Promise<void> {
    await Promise.all(this.#registrations.map((r) => r.update(patch)));
  }

  deregister(): Promise<void> {
    this.#deregistered ??= Promise.all(this.#registrations.map((r) => r.deregister())).then(
      () => this.#onEnd(this),
      (error: unknown) => {
        this.#onEnd(this);
        throw error;
      },
    );
    return this.#deregistered;
  }
}
