import { ConfigError, isHostPort, type SchemeResolver } from "@weft/core";
import { createEtcdRegistry } from "./etcd-registry.ts";

/**
 * The `etcd` scheme of targets: `etcd://host:port[,host:port…]/<service>?prefix=/weft/services`
 * opens an etcd registry (`createEtcdRegistry`) on those endpoints, over plain HTTP, with the key
 * prefix given (default `/weft/services`). The authority must name at least one `host:port`. Give it
 * beside a target: `createTcpTransport({ target: "etcd://10.0.0.5:2379/catalog.v1.Catalog", schemes:
 * { etcd: etcdScheme } })`, or `openDiscovery(parseTarget(url), { etcd: etcdScheme })`.
 */
export const etcdScheme: SchemeResolver = (target) => {
  const hosts = target.authority === "" ? [] : target.authority.split(",");
  if (hosts.length === 0 || !hosts.every(isHostPort))
    throw new ConfigError("target", "etcd://host:port[,host:port…]/<service>", target.text);
  const prefix = target.params.get("prefix");
  const registry = createEtcdRegistry({
    endpoints: hosts.map((h) => `http://${h}`),
    ...(prefix !== null && { prefix }),
  });
  return { discovery: registry, close: () => registry.close() };
};
