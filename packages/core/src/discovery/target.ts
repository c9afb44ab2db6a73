/*
 * Targets: what a client names, as the gRPC ecosystem writes it. `host:port` (or a list of them) is a
 * static address; `scheme://authority/endpoint` names a service a registry resolves. The scheme table
 * maps a scheme to the registry that resolves it; it is passed in (`schemes`), never global, and the
 * built-in `local` and `dns` schemes need nothing installed. `etcd` comes from `@weft/registry-etcd`
 * (`etcdScheme`).
 */
import { ConfigError } from "../errors/weft-error.ts";
import { createDnsDiscovery, type DnsDiscovery } from "./dns.ts";
import { createLocalRegistry } from "./local-registry.ts";
import type { Discovery } from "./registry.ts";

/** A parsed target. */
export interface Target {
  /** The text as given. */
  readonly text: string;
  /** `static` for `host:port`; otherwise the URI's scheme, lower-case, without `:` (`dns`, `etcd`, `local`). */
  readonly scheme: string;
  /** The URI's authority (`127.0.0.1:2379`, a DNS server); `""` when absent (`local:///…`). */
  readonly authority: string;
  /**
   * What is resolved: the service name (`catalog.v1.Catalog`) or, for `dns` and `static`, the
   * `host:port`. The URI's path without its leading `/`, percent-decoded; may be `""` for a registry
   * URL that names no service (`weft ls etcd://127.0.0.1:2379`).
   */
  readonly endpoint: string;
  /** The query parameters (`?dir=/srv/registry&prefix=/weft`). */
  readonly params: URLSearchParams;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]]+):\d{1,5}$/;

/** True when `text` is a plain `host:port` (IPv6 in brackets). */
export function isHostPort(text: string): boolean {
  return HOST_PORT.test(text);
}

/**
 * Parses a target: `host:port` → scheme `static`; `scheme://authority/endpoint?params` otherwise.
 * Throws `ConfigError` (option `target`) for anything else.
 */
export function parseTarget(text: string): Target {
  if (typeof text !== "string" || text === "")
    throw new ConfigError("target", 'a "host:port" or a URI such as "local:///catalog.v1.Catalog"', text);
  if (isHostPort(text)) {
    return { text, scheme: "static", authority: "", endpoint: text, params: new URLSearchParams() };
  }
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(text);
  if (m === null) {
    throw new ConfigError(
      "target",
      'a "host:port", or scheme://authority/endpoint such as "dns:///catalog.internal:4000"',
      text,
    );
  }
  let endpoint: string;
  try {
    endpoint = decodeURIComponent((m[3] ?? "").replace(/^\//, ""));
  } catch {
    throw new ConfigError("target", "a URI whose path is valid percent-encoding", text);
  }
  return {
    text,
    scheme: m[1]!.toLowerCase(),
    authority: m[2]!,
    endpoint,
    params: new URLSearchParams(m[4] ?? ""),
  };
}

/** A registry opened for a target: its discovery side, and how to release it. */
export interface OpenedDiscovery {
  readonly discovery: Discovery;
  /** Releases what opening it took (the client, the watches); idempotent. */
  close(): Promise<void>;
}

/** Opens the registry a target of one scheme names (its authority and params say where and how). */
export type SchemeResolver = (target: Target) => OpenedDiscovery;

/** Scheme → resolver, given beside a target. Merged over the built-in ones (`local`, `dns`). */
export type Schemes = Readonly<Record<string, SchemeResolver>>;

/**
 * `local:///service?dir=/path&ttlMs=…`: the local registry in `dir` (default: its default directory
 * under the OS temp dir). The authority must be empty.
 */
export const localScheme: SchemeResolver = (target) => {
  if (target.authority !== "")
    throw new ConfigError("target", "local:///<service> (no authority)", target.text);
  const dir = target.params.get("dir");
  const registry = createLocalRegistry(dir === null ? {} : { directory: dir });
  return { discovery: registry, close: () => registry.close() };
};

/**
 * `dns:///catalog.internal:4000` (the system's DNS servers) or `dns://10.0.0.2:53/catalog.internal:4000`
 * (that server: the authority names the DNS server, as in gRPC): `createDnsDiscovery` with its
 * defaults. The endpoint is `host:port` (A/AAAA) or an SRV name.
 */
export const dnsScheme: SchemeResolver = (target) => {
  let discovery: DnsDiscovery;
  try {
    discovery = createDnsDiscovery(target.authority === "" ? {} : { servers: [target.authority] });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      "target",
      "dns://<DNS server ip[:port], or none>/<host:port or SRV name>",
      target.text,
    );
  }
  return { discovery, close: () => discovery.close() };
};

/** The schemes core resolves with nothing given. */
export const BUILT_IN_SCHEMES: Schemes = { local: localScheme, dns: dnsScheme };

/**
 * Opens the registry `target` names, from `schemes` (given) over the built-in ones. Throws
 * `ConfigError` for a static target or an unknown scheme, naming the schemes it knows.
 */
export function openDiscovery(target: Target, schemes: Schemes = {}): OpenedDiscovery {
  const table: Schemes = { ...BUILT_IN_SCHEMES, ...schemes };
  const resolver = Object.hasOwn(table, target.scheme) ? table[target.scheme] : undefined;
  if (typeof resolver !== "function") {
    throw new ConfigError(
      "target",
      `a URI whose scheme is one of ${Object.keys(table).join(", ")} (give others in \`schemes\`)`,
      target.text,
    );
  }
  return resolver(target);
}
